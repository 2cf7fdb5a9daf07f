import pytest

from analytics.vision.los import density_los, flow_los


@pytest.mark.parametrize(
    ("flow", "level"),
    [(0.0, "A"), (22.9, "A"), (23.0, "B"), (40.0, "C"), (60.0, "D"), (70.0, "E"), (82.1, "F")],
)
def test_flow_levels_follow_fruin(flow, level):
    assert flow_los(flow) == level


@pytest.mark.parametrize(
    ("density", "level"), [(0.5, "A"), (1.0, "B"), (1.4, "C"), (2.0, "D"), (3.0, "D"), (4.0, "E"), (6.0, "F")]
)
def test_standing_density_levels_follow_fruin(density, level):
    assert density_los(density) == level


def test_walkway_table_is_stricter():
    assert density_los(1.0) == "B"
    assert density_los(1.0, "walkway") == "D"
    assert density_los(1.5, "walkway") == "E"
    assert density_los(2.5, "walkway") == "F"
    with pytest.raises(ValueError, match="density"):
        density_los(-1.0)
