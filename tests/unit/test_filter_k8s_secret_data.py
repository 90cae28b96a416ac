"""k8s_secret_data: values ready for a Secret's data, keys checked against the Secret key rule."""
import base64

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.homelab.mlflow_k3s.plugins.filter.k8s_secret_data import FilterModule, k8s_secret_data

KEYS = st.from_regex(r"\A[-._a-zA-Z0-9]{1,253}\Z")
VALUES = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200)


def test_registered_under_its_name():
    assert FilterModule().filters()["k8s_secret_data"] is k8s_secret_data


def test_known_value():
    assert k8s_secret_data({"password": "mysecretpassword"}) == {"password": "bXlzZWNyZXRwYXNzd29yZA=="}


def test_utf8_and_empty():
    assert k8s_secret_data({"a": "é", "b": ""}) == {"a": "w6k=", "b": ""}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=5))
def test_round_trip(data):
    encoded = k8s_secret_data(data)
    assert set(encoded) == set(data)
    for key, value in data.items():
        assert base64.b64decode(encoded[key], validate=True).decode("utf-8") == value


@pytest.mark.parametrize("bad, needle", [
    ("text", "input"),
    (None, "input"),
    ({"bad key": "x"}, "'bad key'"),
    ({"": "x"}, "''"),
    ({"a/b": "x"}, "'a/b'"),
    ({"k" * 254: "x"}, "not a valid Secret key"),
    ({5: "x"}, "5"),
    ({"port": 5432}, "'port'"),
    ({"password": None}, "'password'"),
    ({"ok": "fine", "broken": b"bytes"}, "'broken'"),
    ({"surrogate": "x\udc80"}, "'surrogate'"),
])
def test_bad_input_names_the_key(bad, needle):
    with pytest.raises(AnsibleFilterError) as err:
        k8s_secret_data(bad)
    assert str(err.value).startswith("k8s_secret_data: ")
    assert needle in str(err.value)
