"""The simulated hub: a physics simulator of a dual-energy line-scan scanner and its belt, a
top camera, belt PLCs, the phantom library of threats and benign objects, and the harness that
runs the live loop on them (``simulator.harness``). The runtime (``edge``) never imports it."""
