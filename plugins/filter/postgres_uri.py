# Copyright: homelab.mlflow_k3s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: postgres_uri
author: homelab.mlflow_k3s contributors
version_added: "0.1.0"
short_description: Build a SQLAlchemy PostgreSQL URI with percent-encoded credentials
description:
  - Builds C(postgresql+<driver>://<user>:<password>@<host>:<port>/<database>[?query]) for
    MLflow's C(--backend-store-uri) / C(MLFLOW_BACKEND_STORE_URI).
  - The driver is always named. A bare C(postgresql://) makes SQLAlchemy 2.1 pick psycopg 3,
    and C(postgres://) is rejected by SQLAlchemy 1.4 and later.
  - User, password and database are percent-encoded with C(quote(value, safe='')), so every
    character round-trips through C(sqlalchemy.engine.make_url), including C(@), C(:), C(/), C(%), C(?), C(#), C([) and C(]),
    spaces, quotes and non-ASCII. (C(quote_plus) would turn a space into C(+), which
    SQLAlchemy does not decode.)
  - Bad input raises an error naming the field; the password never appears in a message.
positional: _input
options:
  _input:
    description: The connection settings.
    type: dict
    required: true
    suboptions:
      user:
        description: Database role name. Must not be empty.
        type: str
        required: true
      password:
        description: The role's password. Any string, including an empty one; not C(None).
        type: str
        required: true
      host:
        description: Host name or address. An IPv6 address is bracketed for you.
        type: str
        required: true
      database:
        description: Database name. Must not be empty.
        type: str
        required: true
      port:
        description: TCP port, an integer from 1 to 65535 (a string of digits is accepted).
        type: int
        default: 5432
      driver:
        description: The DBAPI driver installed in the MLflow image.
        type: str
        default: psycopg2
        choices: [psycopg2, psycopg]
      query:
        description: Extra connection parameters appended as a query string, percent-encoded.
        type: dict
"""

EXAMPLES = r"""
- name: MLflow backend store URI for the in-cluster database
  ansible.builtin.set_fact:
    mlflow_db_uri: >-
      {{ {'user': 'mlflow', 'password': db_password, 'host': 'postgres', 'database': 'mlflowdb'}
         | homelab.mlflow_k3s.postgres_uri }}
  # postgresql+psycopg2://mlflow:p%40ss%2Fw%3Ard@postgres:5432/mlflowdb for password p@ss/w:rd

- name: psycopg 3 and TLS
  ansible.builtin.debug:
    msg: >-
      {{ {'user': 'mlflow', 'password': 's3cret', 'host': 'db.lan', 'database': 'mlflowdb',
          'driver': 'psycopg', 'port': 6432, 'query': {'sslmode': 'require'}}
         | homelab.mlflow_k3s.postgres_uri }}
  # postgresql+psycopg://mlflow:s3cret@db.lan:6432/mlflowdb?sslmode=require
"""

RETURN = r"""
_value:
  description: The URI. It contains the password, so keep it out of logs (C(no_log)).
  type: str
"""

import re
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from ansible.errors import AnsibleFilterError

DRIVERS = ("psycopg2", "psycopg")
FIELDS = ("user", "password", "host", "database", "port", "driver", "query")
BAD_HOST_CHARS = re.compile(r"[\s/@?#%]")


def _fail(msg):
    raise AnsibleFilterError("postgres_uri: " + msg)


def _encode(field, value):
    try:
        return quote(value, safe="")
    except UnicodeEncodeError:
        _fail("%s must be valid Unicode text (it contains an unpaired surrogate)" % field)


def _required_text(spec, field, allow_empty=False):
    if field not in spec or spec[field] is None:
        _fail("%s is required and must be a string" % field)
    value = spec[field]
    if not isinstance(value, str):
        _fail("%s must be a string, got %s" % (field, type(value).__name__))
    if not allow_empty and not value.strip():
        _fail("%s must not be empty" % field)
    return value


def _port(spec):
    port = spec.get("port", 5432)
    if isinstance(port, str) and port.isascii() and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int):
        _fail("port must be an integer from 1 to 65535, got %r" % (port,))
    if not 1 <= port <= 65535:
        _fail("port must be an integer from 1 to 65535, got %d" % port)
    return port


def _host(spec):
    host = _required_text(spec, "host")
    if host.startswith("[") and host.endswith("]"):
        return host
    if ":" in host:  # IPv6 literal
        return "[%s]" % host
    if BAD_HOST_CHARS.search(host):
        _fail("host must be a host name or an IP address, got %r" % host)
    return host


def _query(spec):
    query = spec.get("query")
    if query is None or query == {}:
        return ""
    if not isinstance(query, Mapping):
        _fail("query must be a mapping of parameter to value, got %s" % type(query).__name__)
    pairs = []
    for key, value in query.items():
        if not isinstance(key, str) or not key:
            _fail("query keys must be non-empty strings, got %r" % (key,))
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            _fail("query.%s must be a string or an integer, got %s" % (key, type(value).__name__))
        pairs.append((key, str(value)))
    try:
        return "?" + urlencode(pairs, quote_via=quote, safe="")
    except UnicodeEncodeError:
        _fail("query must be valid Unicode text")


def postgres_uri(spec):
    """Return a postgresql+<driver>:// URI for SQLAlchemy with percent-encoded credentials."""
    if not isinstance(spec, Mapping):
        _fail("input must be a mapping with user, password, host and database, got %s" % type(spec).__name__)
    unknown = sorted(str(k) for k in spec if k not in FIELDS)
    if unknown:
        _fail("unknown field(s) %s; expected only %s" % (", ".join(unknown), ", ".join(FIELDS)))
    user = _required_text(spec, "user")
    password = _required_text(spec, "password", allow_empty=True)
    database = _required_text(spec, "database")
    host = _host(spec)
    port = _port(spec)
    driver = spec.get("driver", "psycopg2")
    if driver not in DRIVERS:
        _fail("driver must be one of %s, got %r" % (", ".join(DRIVERS), driver))
    return "postgresql+%s://%s:%s@%s:%d/%s%s" % (
        driver,
        _encode("user", user),
        _encode("password", password),
        host,
        port,
        _encode("database", database),
        _query(spec),
    )


class FilterModule:
    def filters(self):
        return {"postgres_uri": postgres_uri}
