"""The model server's routers, one module per area; each has ``routes(ctx) -> APIRouter``."""
