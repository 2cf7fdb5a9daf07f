"""Crowd conditions that follow a running simulation: the camera simulator beside `Simulation.run`.

`FollowingConditions` reads one site's zones and exits from the live crowd model, whatever time the
renderer asks about: the cameras show the crowd as the scenario has it now (`make demo`, where the
scenario runs at accelerated time in the same process). Reads only: the model swaps its arrays each
tick, so a reader in another thread sees one tick or the next, never half of one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulators.engine import Simulation


@dataclass
class FollowingConditions:
    """`CrowdConditions` of site `site_id` read from `sim`'s crowd model (density in persons/m²,
    gate flow in persons per simulated second, from the exit's `from_zone` to its `to_zone`)."""

    sim: Simulation
    site_id: str
    _zones: dict[str, int] = field(init=False, default_factory=dict)
    _exits: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        net = self.sim.net
        sites = [inst.site for inst in self.sim.world.instances]
        index = next((i for i, s in enumerate(sites) if s.id == self.site_id), None)
        if index is None:
            raise KeyError(f"no site {self.site_id!r} in the simulation")
        z0, e0 = int(net.zone_offset[index]), int(net.exit_offset[index])
        self._zones = {z.id: z0 + i for i, z in enumerate(sites[index].zones)}
        self._exits = {net.exit_ids[e]: e for e in range(e0, net.n_exits) if int(net.exit_site[e]) == index}

    def density(self, zone_id: str, t_s: float) -> float:
        i = self._zones.get(zone_id)
        return float(self.sim.model.density[i]) if i is not None else 0.0

    def gate_flow(self, gate_id: str, t_s: float) -> float:
        e = self._exits.get(gate_id)
        if e is None:
            return 0.0
        flow = self.sim.model.exit_flow  # persons this tick, (inbound, outbound)
        return float(flow[e, 0] - flow[e, 1]) / self.sim.dt
