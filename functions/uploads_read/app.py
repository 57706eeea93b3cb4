"""Upload API, GET /uploads/{id} and GET /uploads: an upload's status and renditions, the newest uploads."""

from typing import Any

from pipeline.api_http import answer, handler, resolver
from pipeline.settings import ApiSettings
from pipeline.upload_api import UploadApi

API = UploadApi.of(ApiSettings.from_env())
app = resolver()


@app.get("/uploads/<upload_id>")
def read_upload(upload_id: str) -> Any:
    return answer(200, API.read(upload_id))


@app.get("/uploads")
def list_uploads() -> Any:
    return answer(200, API.newest(app.current_event.query_string_parameters))


lambda_handler = handler(app)
