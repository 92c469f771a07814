import time
from graphql import parse, execute, validate
from tests.factories import on_sale_event, ticket_type_input
from tests.api_client import document
from app.api.context import Context
from app.appkeys import DB, FEEDS, RUNTIME, SETTINGS

async def test_q2_layers(make_api, organizer):
    api = await make_api()
    event, _ = await on_sale_event(api, organizer, ticket_type_input(quantityTotal=100))
    body = {"id": event["id"]}
    q = document("Event")
    app = api.app
    view_schema = None
    from app.api.schema import build_schema
    schema = build_schema()
    def ctx():
        return Context(db=app[DB], settings=app[SETTINGS], viewer=__import__('app.auth', fromlist=['ANONYMOUS']).ANONYMOUS, runtime=app[RUNTIME], feeds=app[FEEDS])
    N=300
    for label, fn in [
        ("http", lambda: api.post(q, body)),
        ("schema.execute", lambda: schema.execute(q, variable_values=body, context_value=ctx())),
    ]:
        for _ in range(30): await fn()
        t=time.process_time()
        for _ in range(N): r = await fn()
        print(label, "cpu/op ms", (time.process_time()-t)/N*1000)
    doc = parse(q)
    gs = schema._schema
    t=time.process_time()
    for _ in range(N):
        r = execute(gs, doc, variable_values=body, context_value=ctx())
        if hasattr(r, "__await__"): r = await r
    print("graphql-core execute cpu/op ms", (time.process_time()-t)/N*1000, str(r)[:80])
    from app.catalog import service as catalog
    from bson import ObjectId
    t=time.process_time()
    for _ in range(N):
        e = await app[DB].events.find_one({"_id": ObjectId(event["id"])})
        tt = await app[DB].eventTickets.find({"eventId": ObjectId(event["id"])}).to_list()
    print("two finds cpu/op ms", (time.process_time()-t)/N*1000)
