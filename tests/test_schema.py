from __future__ import annotations

import pytest

from eventgen.errors import ConfigError, InputError
from eventgen.schema import BUILTIN_SCHEMAS, Schema, get_schema


def test_ttbar_schema_is_the_prior_art_layout_plus_counts() -> None:
    s = get_schema("ttbar")
    assert s.names[:2] == ["met", "met_phi"]
    assert s.names[2:6] == ["j1_e", "j1_pt", "j1_eta", "j1_phi"]
    assert s.names[22:26] == ["l2_e", "l2_pt", "l2_eta", "l2_phi"]
    assert s.names[26:] == ["n_jets", "n_leptons"]
    assert get_schema("deepevents").names == s.names[:26]
    assert [o.name for o in s.objects()] == ["j1", "j2", "j3", "j4", "l1", "l2"]
    j2 = s.objects()[1]
    assert (j2.e, j2.pt, j2.eta, j2.phi) == (6, 7, 8, 9)
    assert s.columns[s.index("j1_e")].unit == "GeV"


@pytest.mark.parametrize("name", sorted(BUILTIN_SCHEMAS))
def test_schema_dict_round_trip(name: str) -> None:
    s = BUILTIN_SCHEMAS[name]
    assert Schema.from_json(s.to_json()) == s


def test_user_schema_from_yaml(tmp_path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: dijet\ncolumns:\n  - {name: mjj, kind: energy}\n  - {name: dphi, kind: phi}\n")
    s = get_schema(str(path))
    assert s.names == ["mjj", "dphi"] and s.kinds == ["energy", "phi"]
    assert s.columns[0].unit == "GeV"


def test_schema_errors() -> None:
    with pytest.raises(ConfigError, match="unknown kind 'mass'.*choose one of"):
        Schema.from_dict({"columns": [{"name": "m", "kind": "mass"}]})
    with pytest.raises(ConfigError, match="repeats columns"):
        Schema.from_dict({"columns": [{"name": "a", "kind": "eta"}, {"name": "a", "kind": "eta"}]})
    with pytest.raises(ConfigError, match="needs a kind"):
        Schema.from_dict({"columns": ["a"]})
    with pytest.raises(ConfigError, match="unknown schema 'tt'"):
        get_schema("tt")
    with pytest.raises(InputError, match="has no column 'foo'"):
        get_schema("zll").index("foo")
