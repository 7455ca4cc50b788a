"""Servers for the shared version store and registry: SeaweedFS (S3) and PostgreSQL.

Both run on loopback ports of their own, started here and stopped at the end of the session.
They are required: a test is skipped only when its server is opted out explicitly
(``DRIFTLINE_SKIP_S3=1``, ``DRIFTLINE_SKIP_POSTGRES=1``), never because it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
S3_BASE_PORT = 23330  # master, its gRPC, volume, gRPC, filer, gRPC, S3, gRPC: 23330-23337
ACCESS_KEY, SECRET_KEY = "driftline-test", "driftline-test-secret"


def _opted_out(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server (scripts/postgres.sh); the password goes in ``PGPASSWORD``."""
    if _opted_out("DRIFTLINE_SKIP_POSTGRES"):
        pytest.skip("DRIFTLINE_SKIP_POSTGRES is set")
    script = ROOT / "scripts" / "postgres.sh"
    url = subprocess.run([str(script), "start"], check=True, capture_output=True, text=True).stdout.strip()
    old = os.environ.get("PGPASSWORD")
    os.environ["PGPASSWORD"] = (ROOT / ".cache" / "postgres" / "password").read_text().strip()
    try:
        yield url
    finally:
        subprocess.run([str(script), "stop"], check=False)
        if old is None:
            os.environ.pop("PGPASSWORD", None)
        else:
            os.environ["PGPASSWORD"] = old


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A SeaweedFS server (scripts/seaweedfs.sh builds it) with its S3 gateway on loopback;
    the credentials go in ``AWS_*``, where s3fs (botocore) reads them."""
    if _opted_out("DRIFTLINE_SKIP_S3"):
        pytest.skip("DRIFTLINE_SKIP_S3 is set")
    weed = subprocess.run([str(ROOT / "scripts" / "seaweedfs.sh")], check=True, capture_output=True,
                          text=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="driftline-seaweedfs-"))
    (work / "data").mkdir()
    (work / "s3.json").write_text(
        '{"identities": [{"name": "driftline", "credentials": [{"accessKey": "%s", "secretKey": "%s"}],'
        ' "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}' % (ACCESS_KEY, SECRET_KEY))
    p = S3_BASE_PORT
    args = [weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={work / 'data'}",
            f"-master.port={p}", f"-master.port.grpc={p + 1}", f"-volume.port={p + 2}",
            f"-volume.port.grpc={p + 3}", f"-filer.port={p + 4}", f"-filer.port.grpc={p + 5}",
            "-s3", f"-s3.port={p + 6}", f"-s3.port.grpc={p + 7}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={work / 's3.json'}", "-master.volumeSizeLimitMB=64", "-volume.max=4"]
    log = open(work / "server.log", "wb")
    server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{p + 6}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
                                            "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_ENDPOINT_URL=endpoint,
                      AWS_DEFAULT_REGION="us-east-1")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=2)
                break
            except urllib.error.HTTPError:  # 403 without credentials: it is up
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS did not start; see {work / 'server.log'}") from None
                time.sleep(0.3)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(work, ignore_errors=True)
