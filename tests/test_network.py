"""Addresses and timeouts of a distributed search, parsed before Keras Tuner loads."""

import subprocess
import sys

import pytest

from fmnist_search.errors import UserError
from fmnist_search.tuning import network


@pytest.mark.parametrize("text, host, port", [
    ("127.0.0.1:8470", "127.0.0.1", 8470), ("node1:1", "node1", 1),
    ("[::1]:9000", "::1", 9000), ("localhost:0", "localhost", 0)])
def test_addresses_parse(text, host, port):
    address = network.parse_address(text, "--chief")
    assert (address.host, address.port) == (host, port)


@pytest.mark.parametrize("text", ["nohost", "host:", ":80", "h:99999", "h:port", "::1"])
def test_bad_addresses_are_refused(text):
    with pytest.raises(UserError, match="--chief"):
        network.parse_address(text, "--chief")


def test_only_loopback_is_called_loopback():
    assert network.Address("127.0.0.1", 1).loopback
    assert network.Address("::1", 1).loopback
    assert not network.Address("0.0.0.0", 1).loopback
    assert not network.Address("10.0.0.5", 1).loopback


def test_the_cli_parses_without_loading_keras_tuner():
    """The CLI's parser needs the defaults and the address type; if it pulled in the chief's
    module, an unsupported Keras Tuner would fail at import with a traceback (a CI failure
    once), before the CLI's error handler could say so at exit 2."""
    code = ("import sys; from fmnist_search.cli import build_parser; "
            "build_parser().parse_args(['worker', '--chief', '127.0.0.1:8470', '--project', 'p']); "
            "print('keras_tuner' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
