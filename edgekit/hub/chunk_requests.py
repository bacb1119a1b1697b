"""The hub's answer to a device's chunk request over MQTT (docs/sync-protocol.md, "Update
chunks over MQTT"): each chunk named goes back as its own response; a chunk is served only
when the update is rolled out to a group the device belongs to and the chunk is one of
that update's, anything else is refused (and counted by the caller)."""

from __future__ import annotations

import json

from edgekit.hub import rollouts
from edgekit.sync.update_chunks import decode_request, encode_response

REQUEST_FILTER = "edgekit/v1/+/chunks/req"


def chunks_topic(device_id: str) -> str:
    return f"edgekit/v1/{device_id}/chunks"


def device_of_request_topic(topic: str) -> str | None:
    parts = topic.split("/")
    if len(parts) == 5 and parts[:2] == ["edgekit", "v1"] and parts[3:] == ["chunks", "req"] and parts[2]:
        return parts[2]
    return None


def _offered_manifest(store, device_id: str, update_id: str) -> dict | None:
    rows = store.db.execute(
        "SELECT u.manifest FROM hub_updates u JOIN hub_rollouts r ON r.update_id = u.update_id "
        "JOIN hub_groups g ON g.group_name = r.group_name WHERE u.update_id = ? AND g.device_id = ?",
        (update_id, device_id))
    return json.loads(rows[0][0]) if rows else None


def answer_request(store, device_id: str, payload: bytes) -> list:
    """[(response bytes, served: bool)] for one request. Raises ChunkFormatError for a
    malformed request."""
    request = decode_request(payload)
    manifest = _offered_manifest(store, device_id, request.update_id)
    own = {c["sha256"] for c in manifest["chunks"]} if manifest else set()
    answers = []
    for sha in request.sha256s:
        if manifest is None:
            reason = f"update {request.update_id} is not offered to device {device_id}"
        elif sha not in own:
            reason = f"chunk {sha} is not part of update {request.update_id}"
        else:
            data = rollouts.chunk(store, sha)
            if data is not None:
                answers.append((encode_response(request.update_id, sha, data), True))
                continue
            reason = f"chunk {sha} is missing at the hub"
        answers.append((encode_response(request.update_id, sha, refused=reason), False))
    return answers
