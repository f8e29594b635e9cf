"""TensorFlow's native start-up lines stay off the command's stderr; what matters gets through."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fmnist_search import native_logs

# As TensorFlow 2.21 prints them on a CPU-only machine (`fmnist-search describe model1`).
TF_NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795681825.921785    3085 port.cc:153] oneDNN custom operations are on. You "
    "may see slightly different numerical results due to floating-point round-off errors from "
    "different computation orders. To turn them off, set the environment variable "
    "`TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1795681825.922656    3085 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.",
    "E0000 00:00:1795681830.558209    3085 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
    "TensorFlow with the appropriate compiler flags.",
    "E0000 00:00:1711.123 1 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to "
    "register factory for plugin cuDNN when one has already been registered",
    "E1128 15:48:07.710995   22147 add_port.cc:83] Failed to add port to server: No address "
    "added out of total 1 resolved for '127.0.0.1:51607' (Error in bind for address "
    "'[::ffff:127.0.0.1]:51607': Address already in use)",
]
KEPT = [
    "W0000 00:00:1795681830.1 3085 cpu_allocator_impl.cc:83] Allocation of 188160000 exceeds "
    "10% of free system memory.",
    "F0000 00:00:1795681830.1 3085 tensor_shape.cc:45] Check failed: size >= 0",
    "Traceback (most recent call last):",
    "error: --data-dir /x does not hold the Fashion-MNIST files",
]
MARKERS = ("cuInit", "oneDNN", "cuda drivers", "absl::InitializeLog")


@pytest.mark.parametrize("line", TF_NOISE)
def test_noise_is_recognised(line):
    assert native_logs.is_noise(line + "\n")


@pytest.mark.parametrize("line", KEPT)
def test_warnings_errors_and_our_output_are_kept(line):
    assert not native_logs.is_noise(line + "\n")


def _run_hidden(body: str, *argv: str) -> subprocess.CompletedProcess:
    """A child that routes its descriptor 2 through the filter, then runs ``body``."""
    script = ("import os, sys\nfrom fmnist_search import native_logs\n"
              f"NOISE, KEPT = {TF_NOISE!r}, {KEPT!r}\n{body}")
    return subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True,
                          timeout=60)


def test_filter_drops_noise_written_to_descriptor_2_and_keeps_the_rest():
    proc = _run_hidden(
        "native_logs.hide()\n"
        "os.write(2, ''.join(line + '\\n' for pair in zip(NOISE, KEPT) for line in pair).encode())\n"
        "print('python stderr', file=sys.stderr)\n")
    assert proc.returncode == 0
    assert not any(marker in proc.stderr for marker in MARKERS)
    lines = proc.stderr.splitlines()
    assert "python stderr" in lines
    assert [line for line in lines if line != "python stderr"] == KEPT


def test_a_native_crash_message_still_arrives():
    """TensorFlow aborts right after its F line: the filter process outlives it."""
    proc = _run_hidden("native_logs.hide()\nos.write(2, (KEPT[1] + '\\n').encode())\nos.abort()\n")
    assert proc.returncode != 0
    assert "Check failed: size >= 0" in proc.stderr


@pytest.mark.parametrize("debug", [False, True])
def test_the_command_hides_native_lines_unless_debug(debug):
    body = ("from fmnist_search import cli\n"
            "cli.COMMANDS['describe'] = cli.Command(cli.COMMANDS['describe'].add, "
            "lambda args: os.write(2, (NOISE[3] + '\\n').encode()) and 0)\n"
            "sys.argv = ['fmnist-search', *sys.argv[1:]]\n"
            "sys.exit(cli.main())\n")
    proc = _run_hidden(body, *(["--debug"] if debug else []), "describe", "model1")
    assert proc.returncode == 0
    assert ("cuInit" in proc.stderr) is debug


def test_describe_prints_no_tensorflow_noise():
    """The real thing: TensorFlow loads and builds a model in a subprocess."""
    proc = subprocess.run([sys.executable, "-m", "fmnist_search", "describe", "model1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Total params" in proc.stdout
    assert not any(marker in proc.stderr for marker in MARKERS), proc.stderr
