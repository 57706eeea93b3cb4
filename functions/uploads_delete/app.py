"""Upload API, DELETE /uploads/{id}: delete the source; the pipeline's delete path removes its outputs."""

from typing import Any

from pipeline.api_http import answer, handler, resolver
from pipeline.settings import ApiSettings
from pipeline.upload_api import UploadApi

API = UploadApi.of(ApiSettings.from_env())
app = resolver()


@app.delete("/uploads/<upload_id>")
def delete_upload(upload_id: str) -> Any:
    return answer(202, API.delete(upload_id))


lambda_handler = handler(app)
