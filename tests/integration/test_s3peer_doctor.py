"""`ramenctl doctor s3` against the real server and against a closed port."""

from __future__ import annotations

import socket

import pytest

from reconciler.cli.main import main

pytestmark = pytest.mark.realenv


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the socket is


def test_doctor_passes_on_the_real_server(s3_settings: dict[str, str], key_prefix: str,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_settings["accessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_settings["secretAccessKey"])
    rc = main(["doctor", "s3", "--endpoint", s3_settings["endpoint"], "--bucket", s3_settings["bucket"],
               "--region", s3_settings["region"], "--key-prefix", key_prefix])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "Verdict: FIT" in out and "conditional create refused on an existing key: 412" in out
    assert s3_settings["secretAccessKey"] not in out


def test_doctor_fails_readably_on_a_closed_port(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    rc = main(["doctor", "s3", "--endpoint", f"http://127.0.0.1:{_closed_port()}", "--bucket", "ramen-p2p"])
    out = capsys.readouterr().out
    assert rc != 0
    assert "NOT FIT" in out and "S3Unreachable" in out
    assert "not-a-real-secret" not in out


def test_doctor_refuses_wrong_credentials(s3_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_settings["accessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    rc = main(["doctor", "s3", "--endpoint", s3_settings["endpoint"], "--bucket", s3_settings["bucket"]])
    out = capsys.readouterr().out
    assert rc == 1 and "S3Misconfigured" in out


def test_doctor_without_credentials_says_what_to_set(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    rc = main(["doctor", "s3", "--endpoint", "http://127.0.0.1:1", "--bucket", "b"])
    assert rc == 2 and "AWS_ACCESS_KEY_ID" in capsys.readouterr().out
