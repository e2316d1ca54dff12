"""`llmobserve preview` / `llmobserve instrument` end to end against a live test server."""

import ast
import shutil
import socket
from pathlib import Path

import pytest

pytest.importorskip("libcst")
cli = pytest.importorskip("llmobserve._instrument_cli")

from .helpers import suggestion  # noqa: E402

SAMPLES = Path(__file__).parent / "samples"


@pytest.fixture
def project(tmp_path):
    shutil.copy(SAMPLES / "crew.py", tmp_path / "crew.py")
    (tmp_path / "helpers.py").write_text("def add(a, b):\n    return a + b\n")
    return tmp_path


@pytest.fixture
def run(live_server, ingest_key, capsys):
    """run("preview", "file.py", ...) -> (exit code, stdout, stderr), with the live server's URL and a real key."""

    def _run(*argv, url=None, key=None):
        code = cli.main([*argv, "--url", url or live_server.url, "--api-key", key or ingest_key])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return _run


def test_preview_prints_numbered_suggestions_and_changes_nothing(run, project):
    before = (project / "crew.py").read_bytes()

    code, out, err = run("preview", str(project / "crew.py"), str(project / "helpers.py"))

    assert code == 0, err
    assert "crew.py  (engine: static; 9 suggestions)" in out
    assert ' 1. line 33: plan_topics  @tool("plan_topics")' in out
    assert "Researcher.run  @agent(\"researcher\")" in out
    assert "Makes one LLM call: client.chat.completions.create()." in out
    assert "helpers.py  (engine: static; 0 suggestions)" in out
    assert (project / "crew.py").read_bytes() == before
    assert sorted(p.name for p in project.iterdir()) == ["crew.py", "helpers.py"]


def test_preview_reads_url_and_key_from_the_environment(live_server, ingest_key, project, monkeypatch, capsys):
    monkeypatch.setenv("LLMOBSERVE_URL", live_server.url)
    monkeypatch.setenv("LLMOBSERVE_API_KEY", ingest_key)
    assert cli.main(["preview", "--json", str(project / "helpers.py")]) == 0
    assert '"engine": "static"' in capsys.readouterr().out


def test_instrument_without_auto_apply_shows_the_diff_and_writes_nothing(run, project):
    before = (project / "crew.py").read_bytes()

    code, out, _ = run("instrument", str(project / "crew.py"))

    assert code == 0
    assert "+from llmobserve import agent, tool" in out
    assert '+@agent("pipeline")' in out
    assert "run again with --auto-apply" in out
    assert (project / "crew.py").read_bytes() == before
    assert not (project / "crew.py.bak").exists()


def test_instrument_auto_apply_writes_a_backup_decorates_the_right_functions_and_is_idempotent(run, project):
    before = (project / "crew.py").read_text()

    code, out, err = run("instrument", str(project), "--auto-apply")

    assert code == 0, err
    assert (project / "crew.py.bak").read_text() == before
    after = (project / "crew.py").read_text()
    tree = ast.parse(after)
    decorated = sorted(n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.decorator_list)
    assert decorated == ["_rewrite", "classify_with_groq", "draft", "plan_topics", "review", "run", "run_pipeline",
                         "summarise", "summarise_all"]
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert len(added) == 10 and all(line.lstrip().startswith(("@agent(", "@tool(", "from llmobserve")) for line in added)
    assert (project / "helpers.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert not (project / "helpers.py.bak").exists()
    assert "1 file(s) instrumented, 0 failed." in out

    code, out, _ = run("instrument", str(project), "--auto-apply")

    assert code == 0
    assert "crew.py: nothing to change" in out
    assert (project / "crew.py").read_text() == after
    assert (project / "crew.py.bak").read_text() == before   # the backup still holds the original


def test_min_kind_agent_applies_only_agents(run, project):
    code, _, _ = run("instrument", str(project / "crew.py"), "--auto-apply", "--min-kind", "agent")
    assert code == 0
    after = (project / "crew.py").read_text()
    assert "from llmobserve import agent\n" in after and "@tool(" not in after and after.count("@agent(") == 4


def test_instrument_through_the_claude_engine(run, project, fake_anthropic):
    code_text = (project / "crew.py").read_text()
    fake_anthropic.tool_answer([suggestion(code_text, "run_pipeline", "agent:Research Crew", kind="agent"),
                                suggestion(code_text, "review", "ghost") | {"function_name": "ghost"}])

    code, out, err = run("instrument", str(project / "crew.py"), "--yes")

    assert code == 0, err
    assert '+@agent("research_crew")' in out
    assert (project / "crew.py").read_text().count("@agent(") == 1


def test_an_unparsable_file_is_reported_and_the_others_still_processed(run, project):
    (project / "broken.py").write_text("def oops(:\n    pass\n")

    code, out, err = run("instrument", str(project), "--auto-apply")

    assert code == 1
    assert "broken.py: does not parse: invalid syntax (line 1)" in err
    assert (project / "broken.py").read_text() == "def oops(:\n    pass\n"
    assert (project / "crew.py.bak").exists()


def test_a_bad_key_exits_4_with_a_clear_message(run, project):
    code, _, err = run("preview", str(project / "crew.py"), key="llmo_wrong")
    assert code == 4
    assert "rejected the API key (401)" in err


def test_an_unreachable_server_exits_3(run, project):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # closed again when the block ends: nothing listens there
    code, _, err = run("preview", str(project / "crew.py"), url=f"http://127.0.0.1:{port}")
    assert code == 3
    assert f"Cannot reach http://127.0.0.1:{port}" in err


def test_missing_key_and_missing_files_are_usage_and_file_errors(live_server, project, monkeypatch, capsys):
    monkeypatch.delenv("LLMOBSERVE_API_KEY", raising=False)
    assert cli.main(["preview", str(project / "crew.py"), "--url", live_server.url]) == 2
    assert "No API key" in capsys.readouterr().err
    assert cli.main(["preview", str(project / "nope.py"), "--url", live_server.url, "--api-key", "llmo_x"]) == 1


def test_a_bom_crlf_and_the_file_mode_survive_the_rewrite(run, project):
    path = project / "win.py"
    original = b"\xef\xbb\xbfimport openai\r\n\r\ndef ask(q):\r\n    return openai.chat.completions.create(model='m')\r\n"
    path.write_bytes(original)
    path.chmod(0o750)

    code, _, err = run("instrument", str(path), "--auto-apply")

    assert code == 0, err
    assert path.read_bytes() == (b"\xef\xbb\xbfimport openai\r\nfrom llmobserve import tool\r\n\r\n"
                                 b"@tool(\"ask\")\r\ndef ask(q):\r\n    return openai.chat.completions.create(model='m')\r\n")
    assert (project / "win.py.bak").read_bytes() == original
    assert path.stat().st_mode & 0o777 == 0o750


class _Tty:
    def isatty(self):
        return True


def test_on_a_terminal_instrument_asks_before_writing(run, project, monkeypatch):
    (project / "two.py").write_text((project / "crew.py").read_text())
    answers = iter(["n", "y"])
    monkeypatch.setattr("sys.stdin", _Tty())
    monkeypatch.setattr("builtins.input", lambda: next(answers))
    crew_before = (project / "crew.py").read_text()

    code, out, _ = run("instrument", str(project / "crew.py"), str(project / "two.py"))

    assert code == 0
    assert (project / "crew.py").read_text() == crew_before and not (project / "crew.py.bak").exists()
    assert "@agent(" in (project / "two.py").read_text() and (project / "two.py.bak").exists()
    assert "1 file(s) instrumented" in out


def test_a_429_is_waited_out_as_retry_after_says(run, project, settings, monkeypatch):
    from django.core.cache import cache

    settings.LLMOBSERVE_INSTRUMENT_RATE_PER_ORG = 1
    waits = []

    def fake_sleep(seconds):
        waits.append(seconds)
        cache.clear()   # the next minute has begun

    monkeypatch.setattr(cli.time, "sleep", fake_sleep)

    code, out, err = run("preview", str(project / "crew.py"), str(project / "helpers.py"))

    assert code == 0, err
    assert len(waits) == 1 and 1 <= waits[0] <= 60
    assert "rate limited by the server; waiting" in err
    assert "helpers.py  (engine: static; 0 suggestions)" in out


def test_the_progress_bar_shows_only_on_a_terminal_for_several_files():
    import io

    class TtyBuffer(io.StringIO):
        def isatty(self):
            return True

    stream = TtyBuffer()
    progress = cli._Progress(4, stream)
    progress.step()
    progress.show("app.py")
    assert "[######..................] 1/4 app.py" in stream.getvalue()
    quiet = io.StringIO()
    cli._Progress(4, quiet).show("app.py")
    cli._Progress(1, TtyBuffer()).show("app.py")
    assert quiet.getvalue() == ""
