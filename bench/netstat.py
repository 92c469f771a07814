"""The kernel's count of connections refused at a full listen queue (Linux: /proc/net/netstat).

A crowd connecting at once can fill an API process's accept queue; the
connections then wait for SYN retries (seconds) or are reset, which a buyer
sees as a slow or failed connect. Machine-wide: another process's overflows
count too, but they are rare enough for a delta over a rush to mean ours.
"""

from __future__ import annotations


def listen_overflows() -> dict[str, int] | None:
    """TcpExt ListenOverflows and ListenDrops so far; None where the kernel does not say."""
    try:
        with open("/proc/net/netstat") as f:
            lines = [line.split() for line in f if line.startswith("TcpExt:")]
    except OSError:
        return None
    if len(lines) != 2:
        return None
    values = dict(zip(lines[0][1:], lines[1][1:], strict=False))
    try:
        return {"overflows": int(values["ListenOverflows"]), "drops": int(values["ListenDrops"])}
    except (KeyError, ValueError):
        return None


def delta(before: dict[str, int] | None, after: dict[str, int] | None) -> dict[str, int] | None:
    if before is None or after is None:
        return None
    return {k: after[k] - before[k] for k in before}
