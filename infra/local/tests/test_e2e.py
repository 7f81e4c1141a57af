"""End to end on the local stack: real S3 uploads trigger the real submit function, the real state machine
polls the Bedrock emulator through the real check-jobs function, the real finalize writes the results, and
EventBridge delivers the completion event to an SQS queue. Every test checks the promises of docs/reliability.md
through `helpers.run_batch`: each input line in exactly one place, the final batch.json, the event and its
detail, the execution status, and every Bedrock job of the batch accounted for.

Faults come from the emulator, chosen by file name: the pipeline names jobs after the batch id, which
starts with the file's name (infra/local/emulator/README.md, "Fault injection"). Faults on the wire and in
the functions themselves are in test_reliability.py.
"""

import json

import stack
from helpers import CLAUDE, NOVA, chat, emulator, ids, lines, run_batch, s3_event

def test_happy_path_claude(local_stack):
    r = run_batch(local_stack, "happy-claude", lines(120, "c", max_tokens=50))
    assert r["doc"]["status"] == "completed"
    assert ids(r["output"]) == [f"c{i}" for i in range(120)], "input order"
    body = r["output"][0]["response"]["body"]
    assert body["object"] == "chat.completion" and body["model"] == CLAUDE
    assert body["choices"][0]["finish_reason"] in {"stop", "length", "tool_calls"}
    assert r["event"]["detail"]["usage"]["input_tokens"] > 0


def test_happy_path_nova_from_the_folder_name(local_stack):
    r = run_batch(local_stack, "happy-nova", lines(110, "n"), folder=NOVA)
    assert r["doc"]["status"] == "completed"
    assert r["output"][0]["response"]["body"]["model"] == NOVA
    assert len(r["output"]) == 110


def test_mixed_model_file_runs_one_job_per_model(local_stack):
    mixed = []
    for i in range(200):
        mixed.append(chat(f"m{i}", model=NOVA) if i % 2 else chat(f"m{i}"))
    r = run_batch(local_stack, "mixed-models", mixed)
    models = sorted(j["model"] for j in r["doc"]["bedrock"]["jobs"])
    assert models == sorted([CLAUDE, NOVA])
    assert {l["response"]["body"]["model"] for l in r["output"]} == {CLAUDE, NOVA}
    assert len(r["output"]) == 200


def test_invalid_lines_are_reported_and_the_rest_run(local_stack):
    good = lines(105, "g")
    bad = [
        chat("hot", temperature=1.8),
        chat("many", n=2),
        '{"custom_id": "cut", "method": "POST"',
        json.dumps({"method": "POST", "url": "/v1/chat/completions", "body": {}}),
        chat("g3"),
    ]
    r = run_batch(local_stack, "invalid-lines", good[:50] + bad + good[50:])
    assert len(r["output"]) == 105
    codes = {e["custom_id"]: e["response"]["body"]["error"]["code"] for e in r["errors"]}
    assert codes["hot"] == "invalid_sampling"
    assert codes["many"] == "unsupported_n"
    assert codes[None] in {"invalid_json", "missing_custom_id"}
    messages = [e["response"]["body"]["error"]["message"] for e in r["errors"]]
    assert any(m.startswith("line 51, custom_id \"hot\": body.temperature") for m in messages), messages
    assert any("custom_id: is used twice: first on line 4" in m for m in messages), messages


def test_duplicate_s3_event_makes_one_batch(local_stack):
    c = local_stack
    r = run_batch(c, "duplicate-event", lines(100, "d"))
    event = s3_event("inbox/duplicate-event.jsonl", r["doc"]["metadata"]["source_version"])
    reply = c["lambda"].invoke(FunctionName="submit", Payload=json.dumps(event).encode())
    outcome = json.loads(reply["Payload"].read())
    assert outcome == [{"outcome": "duplicate", "batch_id": r["batch_id"]}]
    executions = c["sfn"].list_executions(stateMachineArn=stack.FUNCTION_ENV["STATE_MACHINE_ARN"])["executions"]
    assert [e["name"] for e in executions].count(r["batch_id"]) == 1
    jobs = c["bedrock"].list_model_invocation_jobs(nameContains=r["batch_id"])["invocationJobSummaries"]
    assert len(jobs) == 1


def test_failed_job_turns_every_record_into_an_error(local_stack):
    emulator("faults", {"match": "failing-job", "fault": "fail"})
    r = run_batch(local_stack, "failing-job", lines(100, "f"))
    assert r["doc"]["status"] == "failed"
    assert {e["error"]["code"] for e in r["errors"]} == {"batch_failed"}
    assert r["doc"]["errors"]["data"][0]["code"] == "bedrock_job_failed"


def test_an_error_no_retry_can_mend_fails_the_batch_and_still_accounts_for_every_line(local_stack):
    # check-jobs gets AccessDenied from Bedrock: a BatchdropFatalError, caught by the state machine, which
    # runs finalize in failure mode and announces Batch Failed.
    emulator("faults", {"match": "denied-job", "fault": "access_denied_get:1"})
    r = run_batch(local_stack, "denied-job", lines(100, "a"))
    assert r["doc"]["status"] == "failed"
    assert "AccessDeniedException" in r["event"]["detail"]["error"]
    # Results Bedrock produced before the failure are still delivered; the rest are batch_failed errors.
    assert {e["error"]["code"] for e in r["errors"]} <= {"batch_failed"}


def test_expired_job(local_stack):
    emulator("faults", {"match": "expiring-job", "fault": "expire"})
    r = run_batch(local_stack, "expiring-job", lines(100, "e"))
    assert r["doc"]["status"] == "expired"
    assert len(r["errors"]) == 100
    assert {e["error"]["code"] for e in r["errors"]} == {"batch_expired"}


def test_partially_completed_job(local_stack):
    emulator("faults", {"match": "partial-job", "fault": "partial:0.5"})
    r = run_batch(local_stack, "partial-job", lines(120, "p"))
    assert r["doc"]["status"] == "expired"
    assert 0 < len(r["output"]) < 120
    assert {e["error"]["code"] for e in r["errors"]} == {"batch_expired"}


def test_cancel_marker_cancels_the_batch(local_stack):
    c = local_stack

    def cancel(batch_id):
        c["s3"].put_object(Bucket=stack.INPUT_BUCKET, Key=f"cancel/{batch_id}", Body=b"")

    # Slow jobs, so that the cancel request arrives while the job runs.
    emulator("config", {"step_ms": 3000})
    try:
        r = run_batch(c, "cancelled-job", lines(100, "x"), during=cancel)
    finally:
        emulator("config", {"step_ms": 200})
    assert r["doc"]["status"] == "cancelled"
    assert r["doc"]["bedrock"]["cancel_requested"] is True
    assert {e["error"]["code"] for e in r["errors"]} <= {"batch_cancelled"}


def test_throttling_on_create_is_retried(local_stack):
    emulator("faults", {"match": "throttled-job", "fault": "throttle_create:4"})
    r = run_batch(local_stack, "throttled-job", lines(100, "t"))
    assert r["doc"]["status"] == "completed"
    assert len(r["output"]) == 100


def test_below_minimum_model_group_is_rejected(local_stack):
    mixed = lines(100, "big") + lines(10, "small", model=NOVA)
    r = run_batch(local_stack, "below-minimum", mixed)
    assert len(r["output"]) == 100
    assert {e["custom_id"] for e in r["errors"]} == {f"small{i}" for i in range(10)}
    message = r["errors"][0]["response"]["body"]["error"]["message"]
    assert "needs at least 100 records per Bedrock batch job, and this file has 10" in message
    assert NOVA in message


def test_large_file_two_balanced_jobs_beyond_the_concurrency_limit(local_stack):
    # One job at a time for this model: the second is queued (ServiceQuotaExceeded), then runs.
    emulator("config", {"quotas": {"models": {CLAUDE: {"max_concurrent_jobs": 1}}}})
    try:
        r = run_batch(local_stack, "fifty-thousand-and-one", lines(50_001, "L", max_tokens=10), timeout=600)
    finally:
        emulator("config", {"quotas": {"models": {CLAUDE: {"max_concurrent_jobs": 20}}}})
    jobs = r["doc"]["bedrock"]["jobs"]
    assert [j["records"] for j in jobs] == [25_001, 25_000]
    assert r["doc"]["status"] == "completed"
    assert len(r["output"]) == 50_001


def test_structured_output_answers_are_the_json_of_the_forced_tool(local_stack):
    """docs/formats.md "Structured output": json_schema (Claude) and json_object (Nova) lines run as a tool the
    model must call; each answer's content is that call's input as a JSON string, with no tool call shown."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"]}
    place = {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}
    file = lines(100, "s", response_format=place, max_tokens=200)
    file += lines(100, "o", model=NOVA, response_format={"type": "json_object"}, max_tokens=200)
    r = run_batch(local_stack, "structured-output", file)
    assert r["doc"]["status"] == "completed" and not r["errors"], r["errors"][:2]
    for line in r["output"]:
        message = line["response"]["body"]["choices"][0]["message"]
        assert "tool_calls" not in message or not message["tool_calls"], message
        assert line["response"]["body"]["choices"][0]["finish_reason"] == "stop"
        answer = json.loads(message["content"])
        assert isinstance(answer, dict), message
        if line["custom_id"].startswith("s"):
            assert isinstance(answer["city"], str) and isinstance(answer["population"], int), answer


def test_llama_and_mistral_run_as_converse_jobs(local_stack):
    """docs/formats.md "Converse": models the catalogue runs through Converse get Converse request bodies, in
    jobs of modelInvocationType Converse (the emulator refuses any other body for them); a line with tools for
    such a model is rejected before the job, since Bedrock fails Converse-type records with a toolConfig."""
    llama, mistral = "us.meta.llama3-3-70b-instruct-v1:0", "us.mistral.mistral-large-2407-v1:0"
    system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    file = lines(100, "l", model=llama, messages=system, max_tokens=40, stop=["END"])
    file += lines(100, "m", model=mistral, max_tokens=40, temperature=0.2)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    file.append(chat("with-tools", model=llama, tools=[tool]))
    r = run_batch(local_stack, "converse-models", file)
    assert r["doc"]["status"] == "completed"
    assert sorted(j["model"] for j in r["doc"]["bedrock"]["jobs"]) == sorted([llama, mistral])
    for job in r["jobs"]:
        described = local_stack["bedrock"].get_model_invocation_job(jobIdentifier=job["jobArn"])
        assert described.get("modelInvocationType") == "Converse", described
    assert {l["response"]["body"]["model"] for l in r["output"]} == {llama, mistral}
    assert len(r["output"]) == 200
    [rejected] = r["errors"]
    assert rejected["custom_id"] == "with-tools"
    assert "takes no tools" in rejected["response"]["body"]["error"]["message"]


def test_a_model_from_the_stacks_own_catalogue_file(local_stack):
    """docs/models.md "In a deployed stack": the functions read the catalogue file the stack names
    (infra/local/models.json, uploaded as config/models.json), so a model only it describes runs, and its facts
    apply: this entry takes temperature or top_p, not both."""
    opus = "us.anthropic.claude-opus-4-6-v1:0"
    file = lines(100, "o", max_tokens=20)
    file.append(chat("both", temperature=0.5, top_p=0.9))
    r = run_batch(local_stack, "users-catalogue", file, folder=opus)
    assert r["doc"]["status"] == "completed"
    assert [j["model"] for j in r["doc"]["bedrock"]["jobs"]] == [opus]
    assert len(r["output"]) == 100 and {l["response"]["body"]["model"] for l in r["output"]} == {opus}
    [both] = r["errors"]
    assert both["custom_id"] == "both"
    assert "takes temperature or top_p, not both" in both["response"]["body"]["error"]["message"]


def embed(custom_id, **body):
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": body})


def test_embeddings_file_beside_chat_lines(local_stack):
    """docs/formats.md "Embeddings": /v1/embeddings lines run on Titan Text Embeddings V2 in their own job, beside
    the chat lines' job; a list of texts fans out into records and joins back into one response, in order; base64
    is the float32 bytes of the same vector; a token-id input is rejected before Bedrock."""
    import base64
    import math
    import struct

    texts = [f"text number {i}" for i in range(10)]
    file = [embed(f"pair{i}", model="text-embedding-3-small", input=[texts[i % 10], texts[(i + 3) % 10]], dimensions=256)
            for i in range(40)]
    file += [embed(f"b64-{i}", input=texts[i % 10], dimensions=256, encoding_format="base64") for i in range(30)]
    file += [embed(f"one{i}", input=texts[i % 10]) for i in range(40)]
    file.append(embed("tokens", input=[[101, 2023, 102]]))
    file += lines(100, "c", max_tokens=30)
    r = run_batch(local_stack, "embeddings-and-chat", file)
    assert r["doc"]["status"] == "completed"
    titan = "amazon.titan-embed-text-v2:0"
    by_model = {j["model"]: j for j in r["doc"]["bedrock"]["jobs"]}
    assert sorted(by_model) == sorted([titan, CLAUDE]), by_model
    for job in r["jobs"]:
        described = local_stack["bedrock"].get_model_invocation_job(jobIdentifier=job["jobArn"])
        assert described.get("modelInvocationType", "InvokeModel") == "InvokeModel", described

    [rejected] = r["errors"]
    assert rejected["custom_id"] == "tokens"
    assert rejected["response"]["body"]["error"]["code"] == "invalid_input"
    assert rejected["response"]["body"]["error"]["param"] == "body.input[0]"

    out = {l["custom_id"]: l["response"]["body"] for l in r["output"]}
    assert len(out) == 210
    assert all(out[f"c{i}"]["object"] == "chat.completion" for i in range(100))

    def unit(v):
        return abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-3

    vector = {}
    for i in range(40):
        body = out[f"pair{i}"]
        assert body["object"] == "list" and body["model"] == titan
        assert [d["index"] for d in body["data"]] == [0, 1] and {d["object"] for d in body["data"]} == {"embedding"}
        assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
        for d, text in zip(body["data"], [texts[i % 10], texts[(i + 3) % 10]]):
            assert len(d["embedding"]) == 256 and unit(d["embedding"])
            # The emulator's vector depends on the text alone: the join kept each text's own answer, in order.
            assert vector.setdefault(text, d["embedding"]) == d["embedding"], text
    assert len(vector) == 10 and len({tuple(v) for v in vector.values()}) == 10
    for i in range(30):
        [d] = out[f"b64-{i}"]["data"]
        floats = struct.unpack("<256f", base64.b64decode(d["embedding"]))
        assert all(abs(a - b) < 1e-6 for a, b in zip(floats, vector[texts[i % 10]]))
    for i in range(40):
        [d] = out[f"one{i}"]["data"]
        assert len(d["embedding"]) == 1024 and unit(d["embedding"])
