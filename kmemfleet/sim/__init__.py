"""A labelled simulated fleet: devices, firmware versions, stacks with known behaviours.

`kmemfleet.sim.fleet.generate(FleetSpec(...))` builds a Fleet (with its ground
truth); `kmemfleet.sim.grpc_driver.drive_grpc` streams it into a server the way
agents do; `kmemfleet.sim.bundles.write_bundles` writes it as support bundles.
"""
