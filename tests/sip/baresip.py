"""baresip, a real SIP UA, dialing a number: it plays a 440 Hz sine and records what it hears to a .wav."""
from __future__ import annotations

import asyncio
import audioop
import shutil
import signal
import wave
from pathlib import Path

from tests.sip.test_sipp import free_udp_port


class Baresip:
    def __init__(self, conf: Path, sip_port: int, user: str, password: str):
        self.conf, self.sip_port, self.user, self.password = conf, sip_port, user, password
        self.output = bytearray()
        self.proc: asyncio.subprocess.Process | None = None
        self._collecting: asyncio.Task[None] | None = None

    async def dial(self, number: str) -> None:
        conf = self.conf
        conf.mkdir(exist_ok=True)
        (conf / "config").write_text("\n".join([
            "poll_method epoll", f"sip_listen 127.0.0.1:{free_udp_port()}", "net_interface 127.0.0.1",
            "audio_player aubridge,nil", "audio_source ausine,440", "audio_alert aubridge,nil",
            "ausrc_srate 48000", "ausrc_channels 2", "module_path /usr/lib/baresip/modules",
            "module menu.so", "module g711.so", "module ausine.so", "module aubridge.so", "module sndfile.so",
            "module account.so", f"snd_path {conf}", ""]))
        (conf / "accounts").write_text(
            f"<sip:{self.user}@127.0.0.1:{self.sip_port}>;auth_pass={self.password};regint=0;audio_codecs=PCMU,PCMA\n")
        # No "-t": a fixed lifetime raced a loaded machine (CI once saw baresip quit before it had
        # called). It runs until the test has heard it, then SIGINT stops it cleanly, which
        # closes the recorded .wav. "-s" traces SIP so a failure shows what was said.
        self.proc = await asyncio.create_subprocess_exec(
            shutil.which("baresip") or "/usr/bin/baresip", "-f", str(conf), "-s",
            "-e", f"/dial sip:{number}@127.0.0.1:{self.sip_port}",
            cwd=conf, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)

        async def collect() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            while chunk := await self.proc.stdout.read(4096):
                self.output.extend(chunk)
        self._collecting = asyncio.create_task(collect())

    def trace(self) -> str:
        return self.output.decode(errors="replace")[-3000:]

    def recorded_bytes(self) -> int:
        """The decoded-audio file grows as baresip plays what it hears."""
        return sum(p.stat().st_size for p in self.conf.glob("*dec*.wav"))

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._collecting is not None:
            await self._collecting

    def heard_rms(self) -> int:
        heard = [p for p in self.conf.glob("*.wav") if "dec" in p.name]
        assert heard, self.trace()
        with wave.open(str(heard[0])) as w:
            pcm = w.readframes(w.getnframes())
            width = w.getsampwidth()
        return audioop.rms(pcm, width)
