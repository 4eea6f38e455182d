"""Thread sharing, switched by Chainlit's `allow_thread_sharing` (.chainlit/config.toml; off in ours).

Chainlit serves `PUT /project/thread/share` (the author marks a thread `is_shared` in its metadata)
and `GET /project/share/{thread_id}` (anyone, signed in or not, reads a thread so marked) whatever
that setting says: the setting only hides the button. With sharing off, a person's conversation
must never be readable by anyone else, so:

- the data layer neither stores nor returns the share marks (`datalayer.unshared`), whichever way
  metadata arrives, so no thread is ever "shared", including one marked before this was enforced;
- both routes answer first with a refusal that says sharing is off.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException

from assistant.ui.routes import install_first

OFF = "Sharing conversations is switched off on this server."


def refuse_sharing(fastapi_app: FastAPI) -> None:
    async def share() -> None:
        raise HTTPException(status_code=403, detail=OFF)

    async def shared(thread_id: str) -> None:
        raise HTTPException(status_code=404, detail=OFF)

    install_first(fastapi_app, [("/project/thread/share", share, ["PUT"]),
                                ("/project/share/{thread_id}", shared, ["GET"])])
