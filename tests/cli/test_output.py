"""What the command writes: byte-exact bodies, -o files, -i/-I heads, -L, -w, -Z order.

Where curl is installed, its output for the same command is the reference:
the testing kit's servers send no Date header, so two fetches of a URL get
the very same bytes.
"""

from __future__ import annotations

import gzip
import os
import re
from functools import partial
from pathlib import Path

import pytest

from tests.cli.helpers import BODY, Servers, gather, run_both, run_cli
from trio_requests.testing import Reply, open_h2_server


async def test_stdout_is_byte_exact(servers: Servers) -> None:
    ours, curl = await run_both("-sS", "--cacert", servers.ca_file, servers.https + "/body")
    assert (ours.code, ours.stdout == BODY) == (0, True)
    if curl is not None:
        assert curl.stdout == ours.stdout


async def test_output_file_is_identical_and_atomic(servers: Servers, workdir: Path) -> None:
    """Over HTTP/1.1 (stdout was HTTP/2); stderr is not a terminal: no progress bar."""
    url = servers.https + "/body"
    ours = await run_cli(
        "--http1.1", "--cacert", servers.ca_file, "-o", "got.bin", url, cwd=workdir
    )
    assert (ours.code, ours.stdout, ours.stderr) == (0, b"", "")
    assert (workdir / "got.bin").read_bytes() == BODY
    assert os.listdir(workdir) == ["got.bin"]  # no temporary left


async def test_failed_transfer_leaves_no_file(servers: Servers, workdir: Path) -> None:
    """curl keeps the first 1000 bytes as out.bin; we keep nothing."""
    ours = await run_cli("-sS", "-o", "out.bin", servers.http + "/truncated", cwd=workdir)
    assert ours.code == 18
    assert os.listdir(workdir) == []


async def test_remote_name_and_output_dir(servers: Servers, workdir: Path) -> None:
    ours, curl = await run_both(
        "-sS",
        "--output-dir",
        str(workdir),
        "-O",
        "-O",
        servers.http + "/hello",
        servers.http + "/body",
    )
    assert ours.code == 0, ours.stderr
    assert (workdir / "hello").read_bytes() == b"hello\n"
    assert (workdir / "body").read_bytes() == BODY
    if curl is not None:
        assert curl.code == 0  # it wrote the same files again


@pytest.mark.parametrize(("flag", "http"), [("-i", "--http2"), ("-I", "--http1.1")])
async def test_include_and_head_print_what_curl_prints(
    servers: Servers, flag: str, http: str
) -> None:
    """(nginx's tests do the other two: -I over HTTP/2, -i over HTTP/1.1)"""
    servers.tls.route(
        "HEAD",
        "/hello",
        Reply(200, headers=[("content-type", "text/plain"), ("content-length", "6")]),
    )
    ours, curl = await run_both(
        "-sS", flag, http, "--cacert", servers.ca_file, servers.https + "/hello"
    )
    assert ours.code == 0, ours.stderr
    status = b"HTTP/2 200 \r\n" if http == "--http2" else b"HTTP/1.1 200 OK\r\n"
    assert ours.stdout.startswith(status)
    assert b"content-type: text/plain\r\n" in ours.stdout
    assert ours.stdout.endswith(b"\r\n\r\nhello\n" if flag == "-i" else b"\r\n\r\n")
    if curl is not None:
        assert ours.stdout == curl.stdout


async def test_location_follows_redirects_like_curl(servers: Servers) -> None:
    plain, _ = await run_both("-sS", servers.http + "/redirect")
    assert (plain.code, plain.stdout) == (0, b"moved\n")  # no -L: the redirect itself
    ours, curl = await run_both("-sSiL", servers.http + "/redirect")
    assert ours.code == 0, ours.stderr
    assert ours.stdout.startswith(b"HTTP/1.1 302 Found\r\n")
    assert b"\r\n\r\nHTTP/1.1 200 OK\r\n" in ours.stdout
    assert ours.stdout.endswith(b"\r\n\r\nhello\n")
    if curl is not None:
        assert ours.stdout == curl.stdout


async def test_write_out_variables_match_curl(servers: Servers) -> None:
    template = "%{http_code} %{http_version} %{size_download} %{num_redirects} %{url_effective}"
    args = [
        "-sSL",
        "-o",
        "/dev/null",
        "--cacert",
        servers.ca_file,
        "-w",
        template + " %{time_total}",
    ]
    ours, curl = await run_both(*args, servers.https + "/redirect")
    fixed, _, seconds = ours.stdout.decode().rpartition(" ")
    assert fixed == f"200 2 6 1 {servers.https}/hello"
    assert re.fullmatch(r"\d+\.\d{6}", seconds)
    if curl is not None:
        assert curl.stdout.decode().rpartition(" ")[0] == fixed


async def test_compressed_decodes_and_plain_keeps_the_bytes(servers: Servers) -> None:
    packed = gzip.compress(b"squeezed " * 100)
    servers.h1.route("GET", "/gz", Reply(200, body=packed, headers=[("content-encoding", "gzip")]))
    raw, curl_raw = await run_both("-sS", servers.http + "/gz")
    decoded, curl_decoded = await run_both("-sS", "--compressed", servers.http + "/gz")
    assert raw.stdout == packed
    assert decoded.stdout == b"squeezed " * 100
    if curl_raw is not None and curl_decoded is not None:
        assert (curl_raw.stdout, curl_decoded.stdout) == (raw.stdout, decoded.stdout)
    accepts = [request.header("accept-encoding") for request in servers.h1.requests]
    assert accepts.count(None) == len(accepts) // 2  # only --compressed asks


async def test_parallel_output_comes_in_url_order(servers: Servers) -> None:
    """The first URL answers last; stdout is still in URL order."""
    for number, delay in enumerate([0.3, 0.0, 0.1]):
        servers.tls.route(
            "GET", f"/n{number}", Reply(200, body=f"{number}\n".encode(), delay_headers=delay)
        )
    urls = [f"{servers.https}/n{number}" for number in range(3)]
    ours = await run_cli("-sSZ", "--cacert", servers.ca_file, *urls)
    assert (ours.code, ours.stdout) == (0, b"0\n1\n2\n")


async def test_request_options_reach_the_server(servers: Servers, tmp_path: Path) -> None:
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"line one\r\nline two\n")
    runs = {
        "/form": ("-d", "a=1", "-d", f"@{upload}", "-H", "X-Extra: yes", "-H", "Accept:"),
        "/binary": ("--data-binary", f"@{upload}", "-u", "user:secret", "-A", "agent/1"),
        "/json": ("--json", '{"x": 1}', "-X", "PUT"),
        "/multipart": (
            "-F",
            "name=value",
            "-F",
            f"file=@{upload};type=text/plain",
            "-e",
            "http://from/",
        ),
    }
    for path in runs:
        for method in ("GET", "POST", "PUT"):
            servers.h1.route(method, path, Reply(200))
    results = await gather(
        *(partial(run_cli, "-sS", *args, servers.http + path) for path, args in runs.items())
    )
    assert [ran.code for ran in results] == [0] * len(runs), [ran.stderr for ran in results]
    got = {request.path: request for request in servers.h1.requests}
    form, binary, json_put, multipart = (got[path] for path in runs)
    assert (form.method, form.body) == ("POST", b"a=1&line oneline two")
    assert form.header("content-type") == "application/x-www-form-urlencoded"
    assert binary.body == upload.read_bytes()
    assert (json_put.method, json_put.body, json_put.header("accept")) == (
        "PUT",
        b'{"x": 1}',
        "application/json",
    )
    assert b'name="name"\r\n\r\nvalue\r\n' in multipart.body
    assert b'filename="upload.bin"\r\nContent-Type: text/plain\r\n\r\nline one' in multipart.body
    assert binary.header("authorization") == "Basic dXNlcjpzZWNyZXQ="
    assert binary.header("user-agent") == "agent/1"
    assert multipart.header("referer") == "http://from/"
    assert (form.header("x-extra"), form.header("accept")) == ("yes", None)


async def test_verbose_shows_connections_streams_and_masks_credentials(servers: Servers) -> None:
    url = servers.https + "/hello"
    ours = await run_cli("-v", "-u", "user:secret", "--cacert", servers.ca_file, url, url)
    assert ours.code == 0, ours.stderr
    err = ours.stderr
    assert f"*   Trying 127.0.0.1:{servers.tls.port}..." in err
    assert re.search(r"\* SSL connection using TLSv1\.[23]", err)
    assert "* ALPN: server accepted h2" in err
    assert "* [HTTP/2] [1] OPENED stream for" in err
    assert "* [HTTP/2] [3] OPENED stream for" in err
    assert "* Re-using existing connection" in err
    assert "> GET /hello HTTP/2" in err and "< HTTP/2 200" in err
    assert "> Authorization: Basic [masked]" in err
    assert "c2VjcmV0" not in err and "secret" not in err
    assert ours.stdout == b"hello\nhello\n"


async def test_urls_file(servers: Servers, tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text(f"# two URLs\n{servers.http}/hello\n\n{servers.http}/hello\n")
    ours = await run_cli("-sS", "--urls-file", str(listing))
    assert (ours.code, ours.stdout) == (0, b"hello\nhello\n")


async def test_verbose_never_shows_url_credentials() -> None:
    """-v names the URL of each HTTP/2 stream: without its user:password."""
    async with open_h2_server() as server:
        server.route("GET", "/", Reply(200, body=b"ok"))
        url = server.url.replace("://", "://user:s3cret@") + "/"
        ran = await run_cli("-sv", "--http2-prior-knowledge", url)
    assert ran.code == 0 and ran.stdout == b"ok"
    assert "OPENED stream for http://127.0.0.1" in ran.stderr
    assert "s3cret" not in ran.stderr
