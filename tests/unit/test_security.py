import pytest

from currents.errors import ConfigurationError
from serving.security import authenticate, format_entry, parse_api_keys


def test_round_trip_of_a_generated_entry():
    keys = parse_api_keys(
        format_entry("shop", "secret-1", {"read"})
        + ";"
        + format_entry("ops", "secret-2", {"admin", "read"})
    )
    assert authenticate(keys, "secret-2").name == "ops"
    assert authenticate(keys, "secret-3") is None


@pytest.mark.parametrize(
    "spec", ["nocolons", "a:zz:read", "a:" + "0" * 64 + ":root", "a:" + "0" * 64 + ":"]
)
def test_bad_entries_are_refused_with_a_reason(spec):
    with pytest.raises(ConfigurationError, match="CURRENTS_API_KEYS"):
        parse_api_keys(spec)
