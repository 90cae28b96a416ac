"""postgres_uri: the guide's step 5 done right (DESIGN mistakes 2, 3, 14, 15, 16)."""
import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from ansible_collections.homelab.mlflow_k3s.plugins.filter.postgres_uri import FilterModule, postgres_uri

BASE = {"user": "mlflow", "password": "s3cret", "host": "postgres", "database": "mlflowdb"}
# Every Unicode character except unpaired surrogates, which no UTF-8 text can hold.
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
NON_BLANK = TEXT.filter(lambda s: s.strip())


def spec(**changes):
    out = dict(BASE)
    out.update(changes)
    return {k: v for k, v in out.items() if v is not ...}


def test_registered_under_its_name():
    assert FilterModule().filters()["postgres_uri"] is postgres_uri


def test_defaults_name_the_psycopg2_driver_and_port():
    assert postgres_uri(BASE) == "postgresql+psycopg2://mlflow:s3cret@postgres:5432/mlflowdb"


def test_never_emits_the_scheme_sqlalchemy_rejects_or_a_bare_one():
    uri = postgres_uri(BASE)
    assert not uri.startswith("postgres://")
    assert not uri.startswith("postgresql://")  # a bare scheme selects psycopg 3 under SQLAlchemy 2.1
    assert make_url(uri).get_driver_name() == "psycopg2"


def test_psycopg3_port_and_query():
    uri = postgres_uri(spec(driver="psycopg", port=6432, query={"sslmode": "require", "application_name": "a b&c"}))
    assert uri == "postgresql+psycopg://mlflow:s3cret@postgres:6432/mlflowdb?sslmode=require&application_name=a%20b%26c"
    url = make_url(uri)
    assert url.get_driver_name() == "psycopg"
    assert dict(url.query) == {"sslmode": "require", "application_name": "a b&c"}


def test_space_is_percent_encoded_not_plus():
    uri = postgres_uri(spec(password="a b"))
    assert ":a%20b@" in uri
    assert make_url(uri).password == "a b"


@pytest.mark.parametrize("password", ["p@ss:w/rd", "%41", "?#[]", "it's \"quoted\"", "émoji 🚀", "", "+", " "])
def test_awkward_passwords_round_trip(password):
    assert make_url(postgres_uri(spec(password=password))).password == password


def test_port_given_as_digits_string():
    assert make_url(postgres_uri(spec(port="15432"))).port == 15432


def test_ipv6_host_is_bracketed():
    url = make_url(postgres_uri(spec(host="fd00::10")))
    assert url.host == "fd00::10"
    assert url.port == 5432


@settings(max_examples=300, deadline=None)
@given(user=NON_BLANK, password=TEXT, database=NON_BLANK, port=st.integers(1, 65535),
       driver=st.sampled_from(["psycopg2", "psycopg"]))
def test_round_trip_through_make_url(user, password, database, port, driver):
    uri = postgres_uri({"user": user, "password": password, "host": "db.example", "database": database,
                        "port": port, "driver": driver})
    url = make_url(uri)
    assert (url.username, url.password, url.database) == (user, password, database)
    assert (url.host, url.port, url.drivername) == ("db.example", port, "postgresql+" + driver)


@pytest.mark.parametrize("bad, field", [
    ("not a mapping", "input"),
    (["user"], "input"),
    (spec(user=...), "user"),
    (spec(user=""), "user"),
    (spec(user="  "), "user"),
    (spec(user=5), "user"),
    (spec(host=...), "host"),
    (spec(host=""), "host"),
    (spec(host="bad host/x"), "host"),
    (spec(database=...), "database"),
    (spec(database=""), "database"),
    (spec(password=...), "password"),
    (spec(password=None), "password"),
    (spec(password=1234), "password"),
    (spec(port=0), "port"),
    (spec(port=65536), "port"),
    (spec(port=-1), "port"),
    (spec(port="http"), "port"),
    (spec(port=5432.5), "port"),
    (spec(port=True), "port"),
    (spec(driver="pg8000"), "driver"),
    (spec(driver="postgres"), "driver"),
    (spec(query="sslmode=require"), "query"),
    (spec(query={"sslmode": None}), "query.sslmode"),
    (spec(pasword="typo"), "pasword"),
    (spec(password="ok\ud800"), "password"),
])
def test_bad_input_names_the_field_and_hides_the_password(bad, field):
    with pytest.raises(AnsibleFilterError) as err:
        postgres_uri(bad)
    message = str(err.value)
    assert message.startswith("postgres_uri: ")
    assert field in message
    assert "s3cret" not in message
