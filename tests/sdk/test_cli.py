"""`llmobserve doctor` and the extension hook of the CLI."""

from __future__ import annotations

import io
import sys
import types

from llmobserve import _cli


def test_doctor_all_good(collector_server):
    collector_server.reset()
    out = io.StringIO()
    code = _cli.doctor(collector_server.url, "llmo_test", out=out)
    text = out.getvalue()
    assert code == 0, text
    assert "answered /health with HTTP 200" in text
    assert "clock: within" in text
    assert "API key: accepted" in text and "accepted=1" in text
    assert "SDK counters in this process: captured=" in text and "failed_flushes=" in text
    (event,) = collector_server.events()
    assert event["metadata"]["doctor"] is True


def test_doctor_bad_key_and_dead_url(collector_server):
    out = io.StringIO()
    assert _cli.doctor(collector_server.url, "llmo_wrong", out=out) == 1
    assert "API key: refused (HTTP 401)" in out.getvalue()
    out = io.StringIO()
    assert _cli.doctor("http://127.0.0.1:9", "llmo_test", timeout=1, out=out) == 1
    assert "unreachable" in out.getvalue()


def test_main_runs_doctor_and_prints_help(collector_server, capsys):
    assert _cli.main(["doctor", "--url", collector_server.url, "--api-key", "llmo_test"]) == 0
    assert _cli.main([]) == 2
    assert "doctor" in capsys.readouterr().out


def test_instrument_cli_module_registers_subcommands(monkeypatch):
    mod = types.ModuleType("llmobserve._instrument_cli")

    def register(subparsers):
        p = subparsers.add_parser("preview")
        p.add_argument("files", nargs="+")
        p.set_defaults(func=lambda a: 7 if a.files == ["x.py"] else 1)

    mod.register = register
    monkeypatch.setitem(sys.modules, "llmobserve._instrument_cli", mod)
    import llmobserve

    # The real module may already be imported (and bound on the package) by the instrument tests.
    monkeypatch.setattr(llmobserve, "_instrument_cli", mod, raising=False)
    assert _cli.main(["preview", "x.py"]) == 7
