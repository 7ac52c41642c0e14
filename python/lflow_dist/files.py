"""Owns how the package writes a file a user asked for: whole or not at all."""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_output(path, prefix):
    """Yields a temporary path beside `path` (named PREFIX…, mode 0600 until done); when the block
    ends normally the file gets the usual mode (0666 less the umask) and is renamed onto `path`;
    when it raises, the temporary file is removed and `path` is left as it was."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
