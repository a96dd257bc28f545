"""RADIUS probe: an Access-Request with a user's name and password (PAP), the server's answer
judged, on pyrad: Access-Accept is up; Access-Reject is ``auth`` with the server's
Reply-Message; Access-Challenge (a second factor asked) is ``protocol``.

Every request carries a Message-Authenticator (the BlastRADIUS countermeasure; a reply must carry
one too with ``require_message_authenticator``, which servers older than FreeRADIUS 3.2.5 do not
send) and the reply's authenticator is checked against the shared secret, so a server that knows
another secret is heard as silence: RADIUS servers drop what they cannot authenticate, which makes a wrong
secret and a server that is down alike (``timeout``, said so)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Fields, Secret, Target
from ..errors import ErrorType, ProbeFailure
from ._base import ANSWER_SHARE, Attempt, Probe, answer_by, host_port, server_words

__all__ = ["RadiusOptions", "RadiusProbe"]

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]_]{1,253}$")
DICTIONARY = Path(__file__).with_name("radius.dictionary")
_ACCEPT, _REJECT, _CHALLENGE = 2, 3, 11


@dataclass(frozen=True, slots=True)
class RadiusOptions:
    host: str
    username: str
    password: Secret | None
    secret: Secret | None
    port: int = 1812
    nas_identifier: str = "otel-health"
    require_message_authenticator: bool = False

    @classmethod
    def parse(cls, f: Fields) -> RadiusOptions | None:
        host = f.text("host", required=True, pattern=_HOST_RE, hint="use a host name or an IP address")
        username = f.text("username", required=True)
        options = cls(host=host or "", username=username or "",
                      password=f.secret("password", required=True), secret=f.secret("secret", required=True),
                      port=f.whole("port", 1812, minimum=1, maximum=65535),
                      nas_identifier=f.text("nas_identifier", "otel-health") or "otel-health",
                      require_message_authenticator=f.flag("require_message_authenticator", False))
        return options if host and username else None

    def secrets(self) -> Iterator[Secret]:
        for secret in (self.password, self.secret):
            if secret is not None:
                yield secret

    def where(self) -> str:
        return f"radius {host_port(self.host, self.port)} user {self.username}"

    def public(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "username": self.username,
                "password": self.password.source if self.password else None,
                "secret": self.secret.source if self.secret else None, "nas_identifier": self.nas_identifier,
                "require_message_authenticator": self.require_message_authenticator}


class RadiusProbe(Probe):
    kind = "radius"
    component_type = "component"
    check_name = "authentication"
    options_type = RadiusOptions

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self._dictionary: Any = None

    def _load(self) -> None:
        from pyrad.dictionary import Dictionary

        self._dictionary = Dictionary(str(DICTIONARY))  # read once, off the loop

    async def _check(self, target: Target, attempt: Attempt) -> None:
        from pyrad.client_async import ClientAsync

        o: RadiusOptions = target.options
        deadline = answer_by(target.timeout)  # no answer by then is named, with what silence can mean
        attributes: dict[str, str | int] = {"server.address": o.host, "server.port": o.port,
                                            "network.transport": "udp", "user.name": o.username}
        client = ClientAsync(server=o.host, auth_port=o.port, secret=o.secret.reveal().encode() if o.secret else b"",
                             dict=self._dictionary, retries=0, timeout=target.timeout,
                             enforce_ma=o.require_message_authenticator)
        with self.step(attempt, "auth", "Access-Request", attributes) as span:
            await client.initialize_transports(enable_auth=True)
            try:
                packet = client.CreateAuthPacket(User_Name=o.username, NAS_Identifier=o.nas_identifier)
                packet["User-Password"] = packet.PwCrypt(o.password.reveal() if o.password else "")
                answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                client.protocol_auth.send_packet(packet, answered)
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                        reply = await answered
                except TimeoutError:
                    raise ProbeFailure(ErrorType.TIMEOUT, f"no answer within {ANSWER_SHARE:.0%} of the timeout (a "
                                                          "server given a wrong shared secret stays silent too)"
                                       ) from None
            finally:
                await client.deinitialize_transports()
            span.set_attribute("tta.radius.code", int(reply.code))
        said = "; ".join(server_words(_text(m)) for m in reply.get("Reply-Message", ()))
        if reply.code == _REJECT:
            raise ProbeFailure(ErrorType.AUTH, "Access-Reject" + (f": {said}" if said else ""))
        if reply.code == _CHALLENGE:
            raise ProbeFailure(ErrorType.PROTOCOL, "Access-Challenge: the server asks for more than a password (a "
                                                   "second factor?)" + (f": {said}" if said else ""))
        if reply.code != _ACCEPT:
            raise ProbeFailure(ErrorType.PROTOCOL, f"the server answered code {reply.code}, not Access-Accept")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
