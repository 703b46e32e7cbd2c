"""The bubblewrap command line for one sandboxed run, and the privilege drop that comes before it.

What the child sees (everything else does not exist for it):
  /usr, /bin, /sbin, /lib* (read-only; symlinks kept as symlinks), a short list of /etc files the loader and
  Python need, a synthetic /etc/passwd, /etc/group and /etc/hosts (never /etc/shadow), a fresh /proc of its own
  PID namespace, a minimal /dev, size-capped tmpfs /tmp and /dev/shm, the interpreter's prefix and virtual
  environment (read-only), the record's private copy and the exact inputs (read-only), and the folders it must
  write. GPU device nodes (and /sys, read-only, which NCCL reads) only when a run asks for them.

Who the child is: bubblewrap always makes a new user namespace (`--unshare-user`, `--disable-userns` so the child
cannot nest another), drops every capability and sets no_new_privs. When the judge runs as root, the child must
not stay root outside its namespace (uid 0 is exempt from RLIMIT_NPROC and owns the host's files), so the judge
drops to uid/gid 65534 before it starts bubblewrap. An unprivileged uid cannot walk into root's 0700 folders
(the interpreter under /root, pytest's temporary folders), so first, still root, in a private mount namespace of
the launching process only, each source is bind-mounted onto a staging tmpfs that uid 65534 can reach; bubblewrap
then binds from there. When the judge is not root, the child already runs as the judge's own unprivileged user.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import glob
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = SANDBOX_GID = 65534  # "nobody" on Debian and Ubuntu
SANDBOX_HOME = "/tmp"  # the private tmpfs: the only place every child may write
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What the dynamic loader, Python and torch read from /etc; nothing with secrets (no shadow, no ssl/private).
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "ssl/certs", "ssl/openssl.cnf",
             "alternatives", "nsswitch.conf", "host.conf", "gai.conf", "locale.alias", "mime.types")
SYNTHETIC_ETC = {
    "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:{SANDBOX_UID}:{SANDBOX_GID}:sandbox:"
              f"{SANDBOX_HOME}:/usr/sbin/nologin\n",
    "group": f"root:x:0:\nsandbox:x:{SANDBOX_GID}:\n",
    "hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",  # torchrun's rendezvous resolves localhost
    "hostname": "sandbox\n",
}
GPU_DEVICE_GLOBS = ("/dev/nvidia*", "/dev/nvidia-caps/*", "/dev/dri/*")


@dataclass(frozen=True)
class View:
    """The child's filesystem, as host paths shown at the same path inside."""

    read_only: tuple[str, ...]
    writable: tuple[str, ...]
    devices: tuple[str, ...] = ()
    tmp_bytes: int = 256 * 1024**2
    share_net: bool = False


@dataclass(frozen=True)
class Launch:
    """How to start one sandboxed run: the command, and what the launching process does first (as root)."""

    argv: tuple[str, ...]
    stage_root: str | None  # a tmpfs goes here, in the launcher's own mount namespace
    staged: tuple[tuple[str, str], ...]  # (host source, mount point under stage_root), bound before the drop
    drop_to: tuple[int, int] | None  # (uid, gid) to become before exec, when the judge is root


def python_paths() -> tuple[str, ...]:
    """The interpreter's prefix and virtual environment, resolved (a venv's python is a symlink into the prefix)."""
    paths = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix)}
    paths |= {os.path.abspath(p) for p in (sys.prefix, sys.exec_prefix)}  # the venv at the path argv uses
    paths.add(os.path.dirname(os.path.realpath(sys.executable)))
    return tuple(sorted(paths))


def gpu_devices() -> tuple[str, ...]:
    return tuple(sorted(p for pattern in GPU_DEVICE_GLOBS for p in glob.glob(pattern)))


def _inside(path: str, folders: Sequence[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def minimal(paths: Sequence[str], covered: Sequence[str] = ()) -> tuple[str, ...]:
    """Absolute, normalized, without duplicates or paths already inside another one (or inside `covered`)."""
    result: list[str] = []
    for path in sorted({os.path.normpath(os.path.abspath(p)) for p in paths}, key=len):
        if not _inside(path, [*covered, *result]):
            result.append(path)
    return tuple(sorted(result))


def system_args() -> list[str]:
    """Read-only system folders (merged-/usr symlinks stay symlinks) and the /etc allow-list."""
    args: list[str] = []
    for folder in SYSTEM_DIRS:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    return args


def build(bwrap: str, argv: Sequence[str], *, cwd: str, view: View, as_root: bool | None = None) -> Launch:
    """The launch plan for `argv` in `cwd` under `view`. Pure apart from reading which system paths exist and
    creating the per-process folder that holds the synthetic /etc files and the staging mount point."""
    as_root = os.geteuid() == 0 if as_root is None else as_root
    base = private_folder()
    etc = [(str(Path(base) / "etc" / name), f"/etc/{name}") for name in SYNTHETIC_ETC]
    binds: list[tuple[str, str, str]] = [(src, dst, "--ro-bind") for src, dst in etc]
    covered = [d for d in SYSTEM_DIRS if os.path.isdir(d)]
    read_only = minimal([*python_paths(), *view.read_only], covered)
    binds += [(p, p, "--ro-bind") for p in read_only]
    binds += [(p, p, "--bind") for p in minimal(view.writable)]  # after the read-only ones: may sit inside them
    staged: list[tuple[str, str]] = []
    stage_root = str(Path(base) / "stage") if as_root else None
    args = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--hostname", "sandbox"]
    if view.share_net:
        args.append("--share-net")
    args += system_args()
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(view.tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp",
             "--size", str(view.tmp_bytes), "--perms", "1777", "--tmpfs", "/dev/shm"]
    for src, dst, flag in binds:
        if stage_root is not None:
            point = f"{stage_root}/{len(staged)}"
            staged.append((src, point))
            src = point
        args += [flag, src, dst]
    for device in view.devices:
        args += ["--dev-bind", device, device]
    if view.devices:
        args += ["--ro-bind", "/sys", "/sys"]  # NCCL and the CUDA driver read the PCI topology there
    # Last: the root and /dev tmpfs that bwrap built are unbounded in size; nothing may write there.
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", cwd, "--", *argv]
    return Launch(tuple(args), stage_root, tuple(staged), (SANDBOX_UID, SANDBOX_GID) if as_root else None)


@functools.lru_cache(maxsize=1)
def private_folder() -> str:
    """A 0755 folder of this judge process, outside any caller's temporary folder (tests watch theirs for
    leftovers), holding the synthetic /etc files and the staging mount point; removed when the judge exits."""
    parent = "/tmp" if os.access("/tmp", os.W_OK) else tempfile.gettempdir()
    base = tempfile.mkdtemp(prefix="pg-sandbox-", dir=parent)
    os.chmod(base, 0o755)
    (Path(base) / "etc").mkdir(mode=0o755)
    (Path(base) / "stage").mkdir(mode=0o755)
    for name, text in SYNTHETIC_ETC.items():
        path = Path(base) / "etc" / name
        path.write_text(text)
        path.chmod(0o644)
    atexit.register(shutil.rmtree, base, True)
    return base


# --- in the launching process, between fork and exec (root only) -------------------------------------------------

_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000


@functools.lru_cache(maxsize=1)
def _libc():
    # Loaded before any fork: loading a library in a forked child of a threaded process can deadlock.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p)
    libc.unshare.argtypes = (ctypes.c_int,)
    return libc


def prepare() -> None:
    """Everything `stage_and_drop` needs, done in the parent."""
    _libc()


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def stage_and_drop(launch: Launch) -> None:
    """Bind each source onto the staging tmpfs in a private mount namespace, then become uid/gid 65534."""
    libc = _libc()
    if launch.stage_root is not None:
        _check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
        root = launch.stage_root.encode()
        _check(libc.mount(b"tmpfs", root, b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755,size=1m"), "stage tmpfs")
        for source, point in launch.staged:
            if os.path.isdir(source):
                os.mkdir(point, 0o755)
            else:
                os.close(os.open(point, os.O_CREAT | os.O_WRONLY, 0o644))
            _check(libc.mount(source.encode(), point.encode(), None, _MS_BIND | _MS_REC, None), f"bind {source}")
    if launch.drop_to is not None:
        uid, gid = launch.drop_to
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
