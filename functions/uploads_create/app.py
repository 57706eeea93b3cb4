"""Upload API, POST /uploads: an id, a key and a presigned POST for one image; its status starts PENDING."""

from typing import Any

from pipeline.api_http import answer, base_url, handler, resolver
from pipeline.settings import ApiSettings
from pipeline.upload_api import UploadApi

API = UploadApi.of(ApiSettings.from_env())
app = resolver()


@app.post("/uploads")
def create_upload() -> Any:
    event = app.current_event
    return answer(201, API.create(event.decoded_body, base_url(event)))


lambda_handler = handler(app)
