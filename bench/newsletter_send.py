"""A newsletter send to a loopback SMTP sink, DKIM signing on (issue 28, part 5): messages per second.

    .venv/bin/python -m bench.newsletter_send [--recipients 10000] [--runs 1] [--json PATH]
    .venv/bin/python -m bench.newsletter_send --recipients 1000 --profile /tmp/send.prof   # cProfile

The sink is aiosmtpd in its own process (``--sink``: it counts what it accepts and keeps the first
messages for a check), so it does not share the sender's interpreter. Every run sends the reference
article to ``--recipients`` fresh addresses through ``send_newsletter`` as a publish does: a new
registry (SQLite) under a temporary ``--out``, the suppression list, each recipient's signed
one-click link, the DKIM signature (a 2048-bit key), every state transition recorded. The messages
the sink kept are verified with dkimpy against the public key (as a receiver would).

Baselines measured in the same run, against the same sink:

- the same send unsigned (``[newsletter.dkim]`` not set);
- the wire's floor: smtplib sending the same number of already-made messages on one connection,
  nothing recorded, nothing signed;
- DKIM signing alone: ``DkimSigner.sign`` over the same messages, no I/O (CPU per message).

The goal (issue 28): at least 300 messages/s for the signed send, at most one recipient uncertain
per fault and none doubled (the tests in tests/outputs/ hold that, not this).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script; appended: a PYTHONPATH set by the caller wins
    sys.path.append(str(ROOT))
from bench.results import load_average, write_json  # noqa: E402  (run as a script or a module)

SECRET = "bench-unsubscribe-secret-" + "0123456789abcdef" * 2
KEEP = 20  # messages the sink keeps for the DKIM check
SELECTOR, DOMAIN = "bench", "serenitymaliburehab.com"


# -- the sink (its own process) ------------------------------------------------------------------


def sink(keep_dir: Path) -> None:
    """aiosmtpd on 127.0.0.1, a free port printed as ``port N``; counts messages until stdin closes,
    then prints ``accepted N``. The first KEEP messages are written to ``keep_dir``."""
    import logging

    from aiosmtpd.smtp import SMTP

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # a line per command otherwise

    class Counter:
        accepted = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if self.accepted < KEEP:
                (keep_dir / f"{self.accepted}.eml").write_bytes(envelope.original_content)
            self.accepted += 1
            return "250 OK"

    handler = Counter()
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(lambda: SMTP(handler), "127.0.0.1", 0))

    def stdin_readable() -> None:
        if not os.read(sys.stdin.fileno(), 4096):  # closed: the bench is done
            loop.stop()

    loop.add_reader(sys.stdin.fileno(), stdin_readable)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    loop.run_forever()
    server.close()
    print(f"accepted {handler.accepted}", flush=True)


class Sink:
    def __init__(self, folder: Path) -> None:
        self.keep = folder / "kept"
        self.keep.mkdir()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.newsletter_send", "--sink", str(self.keep)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the handshake: the sink listens
        if not line.startswith("port "):
            raise SystemExit(f"the SMTP sink did not start: {line!r}")
        self.port = int(line.split()[1])

    def close(self) -> int:
        """Stop it; how many messages it accepted."""
        out, _ = self.proc.communicate(timeout=60)
        return int(out.split()[-1])


# -- the sends -----------------------------------------------------------------------------------


def _site(signed: bool, key_pem: str) -> Any:
    from clinicpress.settings.newsletter_loop import DkimSettings, DomainCheckSettings
    from clinicpress.site import load_site

    site = load_site(ROOT / "content" / "site.toml")
    organization = site.organization.model_copy(
        update={"postal_address": "Serenity Malibu, 100 Example Way, Malibu, CA 90265"}
    )
    update: dict[str, Any] = {
        "unsubscribe_secret": SecretStr(SECRET),
        "domain_check": DomainCheckSettings(enabled=False),  # no DNS in a benchmark
    }
    if signed:
        update["dkim"] = DkimSettings.model_validate(
            {"selector": SELECTOR, "domain": DOMAIN, "key_file": "bench.pem", "private_key": key_pem}
        )
    return site.model_copy(
        update={"organization": organization, "newsletter": site.newsletter.model_copy(update=update)}
    )


def send_once(
    folder: Path, recipients: int, signed: bool, key_pem: str, profile: Path | None
) -> dict[str, Any]:
    """One whole send to a fresh sink and registry: wall and CPU seconds, messages/s, the report."""
    from clinicpress.outputs.delivery import send_newsletter
    from clinicpress.outputs.subscribers import Subscriber
    from clinicpress.renderers.base import RenderContext
    from clinicpress.site import Smtp
    from clinicpress.sources.loader import load_article

    article = load_article(ROOT / "content" / "ketamine-therapy-substance-abuse.md")
    site = _site(signed, key_pem)
    readers = [Subscriber(f"reader{i}@example.org") for i in range(recipients)]
    context = RenderContext(published_at=datetime(2026, 1, 5, 9, 30, tzinfo=UTC), version="b" * 64)
    run_dir = Path(tempfile.mkdtemp(dir=folder))
    sink_ = Sink(run_dir)
    smtp = Smtp.model_validate({"host": "127.0.0.1", "port": sink_.port, "security": "none", "timeout": 30})
    profiler = cProfile.Profile() if profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    report = send_newsletter(article, site, context, run_dir / "out", recipients=readers, smtp=smtp)
    if profiler:
        profiler.disable()
        assert profile is not None
        profiler.dump_stats(profile)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    accepted = sink_.close()
    if not report.complete or report.accepted != recipients or accepted != recipients:
        raise SystemExit(f"the send did not complete: {report.summary()} (sink accepted {accepted})")
    verified = _verify(sink_.keep, key_pem) if signed else 0
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"wall": wall, "cpu": cpu, "rate": recipients / wall, "verified": verified}


def _verify(kept: Path, key_pem: str) -> int:
    """Every kept message's DKIM signature verifies against the public key (as DNS would publish it)."""
    import dkim
    from cryptography.hazmat.primitives import serialization

    public = serialization.load_pem_private_key(key_pem.encode(), None).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    files = sorted(kept.glob("*.eml"))
    for path in files:
        if not dkim.verify(path.read_bytes(), dnsfunc=lambda name, timeout=5: record):
            raise SystemExit(f"{path.name}: the DKIM signature does not verify")
    return len(files)


def floor_once(folder: Path, messages: list[EmailMessage], recipients: int) -> dict[str, Any]:
    """smtplib, one connection, the same messages again and again: nothing recorded or signed."""
    run_dir = Path(tempfile.mkdtemp(dir=folder))
    sink_ = Sink(run_dir)
    payloads = [m.as_bytes(policy=m.policy.clone(linesep="\r\n")) for m in messages]
    cpu, wall = time.process_time(), time.perf_counter()
    with smtplib.SMTP("127.0.0.1", sink_.port, timeout=30) as conn:
        for i in range(recipients):
            conn.sendmail(
                "news@serenitymaliburehab.com", [f"reader{i}@example.org"], payloads[i % len(payloads)]
            )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    sink_.close()
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"wall": wall, "cpu": cpu, "rate": recipients / wall}


def sign_alone(messages: list[EmailMessage], key_pem: str) -> float:
    """CPU seconds per message of DkimSigner.sign (no I/O)."""
    from clinicpress.outputs.delivery.dkim_sign import DkimSigner

    signer = DkimSigner(SELECTOR, DOMAIN, key_pem)
    copies = [_unsigned_copy(m) for m in messages]
    cpu = time.process_time()
    for msg in copies:
        signer.sign(msg)
    return (time.process_time() - cpu) / len(copies)


def _unsigned_copy(msg: EmailMessage) -> EmailMessage:
    import copy

    return copy.deepcopy(msg)


def sample_messages(count: int) -> list[EmailMessage]:
    """``count`` recipients' messages as a send makes them (unsigned)."""
    from clinicpress.outputs.delivery.loop import LinkMaker
    from clinicpress.renderers.base import RenderContext
    from clinicpress.renderers.newsletter import personalise, render_message_template
    from clinicpress.sources.loader import load_article

    article = load_article(ROOT / "content" / "ketamine-therapy-substance-abuse.md")
    site = _site(False, "")
    context = RenderContext(published_at=datetime(2026, 1, 5, 9, 30, tzinfo=UTC), version="b" * 64)
    template = render_message_template(article, site, context)
    links = LinkMaker.of(site.newsletter.unsubscribe_url, site.newsletter, article.key)
    return [
        personalise(
            template, to=f"reader{i}@example.org", unsubscribe_url=links.link(f"reader{i}@example.org")
        )
        for i in range(count)
    ]


def new_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1, help="medians of this many runs")
    parser.add_argument("--json", help="write the medians here (bench/suite.py)")
    parser.add_argument("--profile", type=Path, help="cProfile the (first) signed send into this file")
    parser.add_argument("--sink", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink:
        sink(args.sink)
        return 0
    key_pem = new_key_pem()
    messages = sample_messages(200)
    signing = sign_alone(messages, key_pem)
    print(f"DKIM signing alone: {signing * 1000:.2f} ms CPU per message ({1 / signing:.0f} messages/s)")
    results: dict[str, list[dict[str, Any]]] = {"signed": [], "unsigned": [], "floor": []}
    with tempfile.TemporaryDirectory(prefix="cp-send-") as tmp:
        folder = Path(tmp)
        for run in range(args.runs):
            profile = args.profile if run == 0 else None
            for name in ("signed", "unsigned", "floor"):
                if name == "floor":
                    result = floor_once(folder, messages, args.recipients)
                else:
                    signed = name == "signed"
                    result = send_once(folder, args.recipients, signed, key_pem, profile if signed else None)
                results[name].append(result)
                print(
                    f"run {run + 1} {name:8}: {args.recipients} messages in {result['wall']:.2f} s "
                    f"({result['rate']:.0f}/s), CPU {result['cpu']:.2f} s "
                    f"({result['cpu'] / args.recipients * 1000:.2f} ms/message), load {load_average()}",
                    flush=True,
                )
    medians = {
        name: {key: statistics.median(one[key] for one in r) for key in ("wall", "cpu", "rate")}
        for name, r in results.items()
    }
    verified = min(r["verified"] for r in results["signed"])
    print(f"DKIM signatures verified with dkimpy: {verified} kept messages per signed run")
    write_json(
        args.json,
        {
            "recipients": args.recipients,
            "runs": args.runs,
            "medians": medians,
            "sign_ms": signing * 1000,
            "verified": verified,
            "cores": os.cpu_count(),
            "load": load_average(),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
