"""An emergency calls its sites' phones by itself (issue 25): two sites of the Changchun preset have a
SIP account registered by a real baresip that answers calls; opening the emergency dials both at once
through the gateway, both answer, and the duty page in Chromium shows both connected by phone. A
screenshot goes to var/test-artifacts/."""
from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from confctl.app import make_app
from confctl.config import Settings
from confctl.emergency_calls import EMERGENCY_CALLS, failure_words, retry_delay
from confctl.keys import SIP_GATEWAY
from rooms.store.engine import make_engine
from rooms.store.sip import SipStore
from rooms.store.users import Role, UserStore
from rooms.topology import demo_topology, demo_topology_path
from tests.browser import launch, sign_in
from tests.media.peers import until
from tests.sip.baresip import Baresip
from tests.sip.test_sipp import free_udp_port

ARTIFACTS = Path(os.environ.get("CONFCTL_TEST_ARTIFACTS", "var/test-artifacts"))
PHONES = {"cc": ("desk-cc", "phone-pass-cc"), "cc-nongan": ("desk-nongan", "phone-pass-ng")}


class AnsweringPhone(Baresip):
    """baresip registered with the control plane, answering every call by itself."""

    async def register(self) -> None:
        conf = self.conf
        conf.mkdir(exist_ok=True)
        (conf / "config").write_text("\n".join([
            "poll_method epoll", f"sip_listen 127.0.0.1:{free_udp_port()}", "net_interface 127.0.0.1",
            "audio_player aubridge,nil", "audio_source ausine,440", "audio_alert aubridge,nil",
            "ausrc_srate 48000", "ausrc_channels 2", "module_path /usr/lib/baresip/modules",
            "module menu.so", "module g711.so", "module ausine.so", "module aubridge.so",
            "module account.so", ""]))
        (conf / "accounts").write_text(f"<sip:{self.user}@127.0.0.1:{self.sip_port}>;auth_pass={self.password};"
                                       "regint=600;answermode=auto;audio_codecs=PCMU,PCMA\n")
        self.proc = await asyncio.create_subprocess_exec(
            shutil.which("baresip") or "/usr/bin/baresip", "-f", str(conf), "-s", cwd=conf,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)

        async def collect() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            while chunk := await self.proc.stdout.read(4096):
                self.output.extend(chunk)
        self._collecting = asyncio.create_task(collect())


def test_a_failed_call_is_tried_again_twice_ten_seconds_apart_and_says_why():
    assert [retry_delay(a) for a in (1, 2, 3)] == [10.0, 10.0, None]
    assert failure_words({"end_reason": "refused", "result_code": 486}) == "refused (SIP 486)"
    assert failure_words({"end_reason": "no_answer", "result_code": 408}) == "no answer (SIP 408)"
    assert failure_words(None) == "the call left no record"


@pytest.mark.browser
async def test_opening_an_emergency_calls_the_registered_phones_and_the_duty_page_shows_them_connected(
        aiohttp_server, aiohttp_client, tmp_path):
    url = f"sqlite:///{tmp_path}/calls.db"
    sip_port = free_udp_port()
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url, sip_port=sip_port,
                                                    recordings_dir=tmp_path / "rec")))
    c = await aiohttp_client(server)
    engine = make_engine(url)
    sip = SipStore(engine)
    for site, (user, password) in PHONES.items():
        sip.add_account(user, site, password, "confctl")
    _, duty = UserStore(engine).add("Duty Officer Wang", Role.ORGANIZER, None, set(demo_topology().sites), ("emergency",))
    officer = {"Authorization": f"Bearer {duty}"}
    phones = [AnsweringPhone(tmp_path / site, sip_port, user, password) for site, (user, password) in PHONES.items()]
    base = f"http://127.0.0.1:{server.port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        for p in phones:
            await p.register()
        try:
            await until(lambda: all(sip.bindings(u, int(time.time())) for u, _ in PHONES.values()), timeout=20,
                        what="both phones registered")
        except AssertionError as e:
            raise AssertionError(f"{e}\n" + "\n".join(p.trace() for p in phones)) from None

        r = await c.post("/api/emergencies", headers=officer, json={"preset": "prefecture:cc", "title": "Dam alert"})
        assert r.status == 201, await r.text()
        e = await r.json()
        assert e["calling"] == ["cc", "cc-nongan"]  # nobody pressed a button: the opening called them

        async def states() -> dict[str, str]:
            running = await (await c.get("/api/emergencies", headers=officer)).json()
            (mine,) = [x for x in running["emergencies"] if x["id"] == e["id"]]
            return {s["site"]: (s["call"] or {}).get("state") for s in mine["site_status"] if s["site"] in PHONES}

        deadline = time.monotonic() + 30
        while (seen := await states()) != {"cc": "answered", "cc-nongan": "answered"}:
            assert time.monotonic() < deadline, f"calls not answered: {seen}\n" + "\n".join(p.trace() for p in phones)
            await asyncio.sleep(0.2)
        progress = server.app[EMERGENCY_CALLS].calls[e["id"]]
        assert all(p.history[0] == "calling" and p.history[-1] == "answered" and p.attempt == 1 for p in progress.values())
        connected = {call.site for call in server.app[SIP_GATEWAY].calls.values() if call.session_id == e["id"]}
        assert connected == set(PHONES)

        async with async_playwright() as pw:
            browser = await launch(pw)
            try:
                page = await browser.new_page(viewport={"width": 1440, "height": 900})
                await sign_in(page, base, duty, "/duty")
                box = page.locator(f"#em-{e['id']}")
                for site in PHONES:
                    await expect(box.locator(f'tr[data-site="{site}"] [data-call="answered"]')).to_contain_text(
                        "connected by phone", timeout=20_000)
                await expect(box.locator('tr[data-site="cc-yushu"]')).to_contain_text("no registered phone")
                await page.screenshot(path=str(ARTIFACTS / "duty-calls-connected.png"), full_page=True)
            finally:
                await browser.close()
    finally:
        for p in phones:
            await p.stop()
        engine.dispose()


async def test_a_busy_phone_is_shown_ringing_then_refused_and_is_called_again(aiohttp_client, tmp_path):
    """A registered phone (a Python UA over UDP) rings, then answers 486 Busy Here; the call shows ringing,
    then the refusal and the retry; the next attempt is answered. The spacing is shortened for the test."""
    from sip_stub.builders import make_response
    from sip_stub.message import Request, parse_message
    from tests.sip.phone import Callee
    url = f"sqlite:///{tmp_path}/busy.db"
    sip_port = free_udp_port()
    c = await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(), db_url=url, sip_port=sip_port,
                                               recordings_dir=tmp_path / "rec")))
    engine = make_engine(url)
    SipStore(engine).add_account("desk-vehicle", "jl-vehicle", "phone-pass-v", "confctl")
    _, duty = UserStore(engine).add("duty", Role.ORGANIZER, None, set(demo_topology().sites), ("emergency",))
    engine.dispose()
    calls = c.app[EMERGENCY_CALLS]
    calls.retry_after_s = 0.5
    phone = await Callee("desk-vehicle", "phone-pass-v", sip_port).open()
    try:
        assert (await phone.register()).status == 200
        r = await c.post("/api/emergencies", headers={"Authorization": f"Bearer {duty}"}, json={"preset": "vehicle"})
        assert r.status == 201, await r.text()
        e = await r.json()
        assert e["calling"] == ["jl-vehicle"]
        while not isinstance(invite := parse_message(await phone.sip.recv(10)), Request) or invite.method != "INVITE":
            pass
        phone.sip.send(bytes(make_response(invite, 180, "Ringing", to_tag="busy1")), sip_port)
        progress = calls.calls[e["id"]]["jl-vehicle"]
        await until(lambda: progress.state == "ringing", timeout=10, what="the call shown ringing")
        phone.sip.send(bytes(make_response(invite, 486, "Busy Here", to_tag="busy1")), sip_port)
        await phone.answer_incoming()  # the second attempt
        await until(lambda: progress.state == "answered", timeout=10, what="the second attempt answered")
        assert progress.history == ["calling", "ringing", "retrying: refused (SIP 486)", "calling", "answered"]
        assert progress.attempt == 2
    finally:
        phone.close()
