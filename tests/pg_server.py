"""A throwaway PostgreSQL server for tests: `pg_url` (session) and a fresh database per test.

Import the fixtures into a test module (`from pg_server import pg_database, pg_url  # noqa: F401`).
The server runs from `initdb` in a temporary folder, listens only on a unix socket in that folder
(no TCP port, so parallel sessions cannot collide), and asks for a password (scram-sha-256), so
tests see a real password in the URL. As root, initdb and the server run as `nobody`: PostgreSQL
refuses to run as root. Tests are skipped only when initdb / pg_ctl are not installed.
"""

import glob
import os
import secrets
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

USER = "clinlong"
# A start that takes longer than this is a broken server, not a slow one.
TIMEOUT_S = 120


def find_pg_bin(name: str) -> Optional[str]:
    """RETURNS (Optional[str]): The path of a PostgreSQL program, on PATH or in Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_server_user(command: List[str]) -> List[str]:
    # initdb and postgres refuse root; nobody can run them in a folder it owns.
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    return [runuser, "-u", "nobody", "--", *command]


def _run(command: List[str], log: Path) -> None:
    with open(log, "ab") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=TIMEOUT_S, check=False)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(command)} failed (exit {result.returncode}):\n{tail}")


def pg_url_for(folder: str, password: str, database: str = "postgres") -> str:
    """RETURNS (str): The `postgresql+psycopg://` URL of a database on the server in `folder`."""
    from sqlalchemy.engine import URL

    url = URL.create(
        "postgresql+psycopg", username=USER, password=password, database=database, query={"host": folder}
    )
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL 15+ server for the session.

    YIELDS (str): The URL of its `postgres` database, user `clinlong` with a random password.
    """
    initdb, pg_ctl = find_pg_bin("initdb"), find_pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql")
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed")
    # Not pytest's tmp_path: a unix socket path must stay under ~100 bytes, and as root the
    # folder must be reachable by nobody (pytest's are private to root).
    folder = tempfile.mkdtemp(prefix="clinlong-pg-")
    data, log = os.path.join(folder, "data"), Path(folder) / "server.log"
    password = "pw-" + secrets.token_hex(12)
    pwfile = os.path.join(folder, "pwfile")
    Path(pwfile).write_text(password + "\n")
    if os.geteuid() == 0:
        import pwd

        nobody = pwd.getpwnam("nobody")
        for path in (folder, pwfile):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        log.touch()
        os.chown(log, nobody.pw_uid, nobody.pw_gid)
    started = False
    try:
        _run(
            _as_server_user(
                [initdb, "-D", data, "-U", USER, f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8"]
                + ["--locale=C", "--no-sync"]
            ),
            log,
        )
        # No TCP listener, durability off: a test server, faster to start and to write.
        options = f"-k {shlex.quote(folder)} -c listen_addresses= -c fsync=off -c full_page_writes=off"
        _run(
            _as_server_user([pg_ctl, "-D", data, "-l", str(log), "-w", "-t", "60", "-o", options, "start"]),
            log,
        )
        started = True
        yield pg_url_for(folder, password)
    finally:
        if started:
            subprocess.run(
                _as_server_user([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"]),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=TIMEOUT_S,
                check=False,
            )
        shutil.rmtree(folder, ignore_errors=True)


def new_database(url: str, name: Optional[str] = None) -> str:
    """Create an empty database on the server `url` points to.

    url (str): A URL from `pg_url`.
    name (Optional[str]): The database's name; a random one by default.
    RETURNS (str): The URL of the new database (same user and password).
    """
    import sqlalchemy as sa

    name = name or "test_" + secrets.token_hex(6)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def pg_database(pg_url: str) -> str:
    """RETURNS (str): The URL of a new, empty database for one test (left for the server's end)."""
    return new_database(pg_url)
