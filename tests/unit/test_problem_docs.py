"""The API document tells the truth about the kernel's problem+json answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Header

from gatherly.web import install_problem_handlers

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def app_with_routes() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/v1/things")
    async def things(cursor: str | None = None) -> list[str]:
        return []

    @app.patch("/v1/things/{thing_id}")
    async def change(thing_id: str, if_match: Annotated[str | None, Header()] = None) -> str:
        return thing_id

    return app


def test_validation_errors_are_documented_as_the_problems_they_are() -> None:
    document = app_with_routes().openapi()
    for item in document["paths"].values():
        for operation in item.values():
            assert operation["responses"]["422"]["content"] == PROBLEM
    assert document["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status"]


def test_each_operation_declares_the_problems_its_shape_can_meet() -> None:
    paths = app_with_routes().openapi()["paths"]
    listing = paths["/v1/things"]["get"]["responses"]
    change = paths["/v1/things/{thing_id}"]["patch"]["responses"]
    assert set(listing) == {"200", "400", "422"}
    assert set(change) == {"200", "400", "404", "409", "412", "413", "422"}
    assert change["412"]["content"] == PROBLEM


def test_asking_twice_gives_the_same_document() -> None:
    app = app_with_routes()
    assert app.openapi() == app.openapi()
