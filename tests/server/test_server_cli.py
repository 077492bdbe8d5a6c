"""``convscope live`` flags that fail before anything is served: one line, the right exit code."""

from __future__ import annotations

import socket

import pytest
from server_models import SPEC

from convscope.cli.live import _urls
from convscope.cli.main import main


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_busy_port_is_reported_before_the_model_loads(capsys, busy_port):
    assert main(["live", "--port", str(busy_port), "-m", "no_such_module:nothing"]) == 2
    assert f"cannot listen on 127.0.0.1:{busy_port}" in _one_line(capsys)


@pytest.mark.parametrize(("args", "message"), [
    (["--token", "t", "--no-token"], "exclude each other"),
    (["--token", " "], "must not be empty"),
    (["--quality", "0"], "--quality"),
    (["--port", "70000"], "--port"),
    (["--host", "no.such.host.invalid"], "cannot bind"),
])
def test_bad_flags(capsys, args, message):
    assert main(["live", *args]) == 2
    assert message in _one_line(capsys)


def test_missing_source_is_one_line(capsys, tmp_path):
    missing = tmp_path / "nope.mp4"
    code = main(["live", "--port", "0", "-m", SPEC, "--input-size", "64", "--source", str(missing)])
    assert code == 1
    err = _one_line(capsys)
    assert err.startswith("error:") and "nope.mp4" in err


def test_printed_urls():
    assert _urls("127.0.0.1", 8765, "abc") == ["http://127.0.0.1:8765/?token=abc"]
    assert _urls("::1", 9000, None) == ["http://[::1]:9000/"]
    wide = _urls("0.0.0.0", 8765, "abc")
    assert wide[0] == "http://127.0.0.1:8765/?token=abc"
    assert wide[1].endswith(":8765/?token=abc") and socket.gethostname() in wide[1]
    assert _urls("::", 8765, None)[0] == "http://[::1]:8765/"
    assert _urls("192.168.1.4", 80, "t") == ["http://192.168.1.4:80/?token=t"]


def _options(parser, title: str) -> dict[str, object]:
    """Option string -> (type, default) of the argument group called ``title``."""
    group = next(g for g in parser._action_groups if g.title == title)
    return {a.option_strings[0]: (a.type, a.default, a.dest) for a in group._group_actions}


def test_live_takes_every_source_flag_of_probe():
    """Item 7: the same definitions (one function), so the same names, types, defaults and meaning."""
    from convscope.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    probe, live = _options(sub["probe"], "source"), _options(sub["live"], "source")
    assert set(probe) == {"--open-timeout", "--read-timeout", "--max-reconnects"} <= set(live)
    for flag, spec in probe.items():
        assert live[flag] == spec, flag
    args = sub["live"].parse_args(["--open-timeout", "3", "--read-timeout", "4.5", "--max-reconnects", "2"])
    assert (args.open_timeout, args.read_timeout, args.max_reconnects) == (3.0, 4.5, 2)
    with pytest.raises(Exception, match="positive"):
        sub["live"].parse_args(["--read-timeout", "0"])
