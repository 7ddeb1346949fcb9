"""SMS and WeChat Work robot channels: real HTTP gateways (http.server in a thread) receive the
real requests from a real notifier watching a real change stream."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fsm.store.embedded import free_port
from scheduler import notify
from scheduler.notify_gateways import ROBOT_TEXT_BYTES, render, requests_for
from tests.procs import wait_for
from tests.test_notify import ADMIN, api, fast, notifiers, publish, run, start_notifier  # noqa: F401 - fixtures

ROBOT_OK = (200, {"errcode": 0, "errmsg": "ok"})


class Gateway:
    """A real HTTP server that records each POST and gives ``answers`` [(status, JSON)] in turn."""

    def __init__(self, answers=((200, {"ok": True}),)):
        self.requests: list[tuple[str, dict, bytes]] = []
        self.answers = list(answers)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, raw))
                status, answer = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def bodies(self) -> list:
        return [json.loads(raw) for _path, _headers, raw in self.requests]

    def close(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def gateway():
    made = []

    def make(answers=((200, {"ok": True}),)):
        made.append(Gateway(answers))
        return made[-1]

    yield make
    for g in made:
        g.close()


def test_a_failed_task_reaches_an_sms_gateway_once_per_number_with_the_templated_body(store, gateway, notifiers):
    sms = gateway()
    notify.subscribe(store, {"event": "task.failed", "function": "fail", "channel": {
        "type": "sms", "url": f"{sms.url}/v1/send", "to": ["+8613800000001", "13800000002"],
        "headers": {"Authorization": "Bearer gw-key-123", "X-Sign-Name": "Suanwang"},
        "body": {"phone": "{to}", "template": "SMS_1", "params": {"task": "{task_id}", "msg": "{text}"},
                 "literal": "{{to}}"}}}, ADMIN)
    notifiers.append(start_notifier(store, fast()))
    task_id = publish(store, "fail", args=["disk on fire"])
    run(store, task_id, state="failed", error="RuntimeError: disk on fire")
    wait_for(lambda: len(sms.requests) == 2, 20, what="two SMS requests")
    paths = {path for path, _h, _b in sms.requests}
    assert paths == {"/v1/send"}
    for _path, headers, _raw in sms.requests:
        assert headers["authorization"] == "Bearer gw-key-123" and headers["x-sign-name"] == "Suanwang"
        assert headers["content-type"].startswith("application/json")
    bodies = sorted(sms.bodies(), key=lambda b: b["phone"])
    assert [b["phone"] for b in bodies] == ["+8613800000001", "13800000002"]
    for body in bodies:
        assert body["template"] == "SMS_1" and body["literal"] == "{to}"
        assert body["params"]["task"] == task_id
        assert task_id in body["params"]["msg"] and "disk on fire" in body["params"]["msg"]
        assert not body["params"]["msg"].startswith("[suanwang]")
    delivery = wait_for(lambda: store.db.deliveries.find_one({"status": "sent"}), 10, what="the delivery recorded")
    assert delivery["channel_type"] == "sms" and delivery["target"] == ["+8613800000001", "13800000002"]
    assert delivery["attempts"] == 1


def test_a_wechat_robot_gets_its_text_message_and_secrets_stay_hidden(store, gateway, notifiers, api):
    robot = gateway([ROBOT_OK])
    url = f"{robot.url}/cgi-bin/webhook/send?key=robot-secret-key"
    made = api.call("POST", "/subscriptions", "super", json={
        "event": "task.succeeded", "function": "echo",
        "channel": {"type": "wechat", "url": url, "mentioned_mobile_list": ["13800000003", "@all"]}})
    assert made.status_code == 201, made.text
    assert made.json()["channel"]["url"] == url  # shown to its maker once
    listed = api.call("GET", "/subscriptions", "super").json()["items"][0]["channel"]
    assert "robot-secret-key" not in json.dumps(listed) and "key=***" in listed["url"]
    notifiers.append(start_notifier(store, fast()))
    task_id = publish(store, "echo", args=["你好"])
    run(store, task_id, result="你好")
    wait_for(lambda: len(robot.requests) == 1, 20, what="the robot's message")
    path, headers, raw = robot.requests[0]
    assert path == "/cgi-bin/webhook/send?key=robot-secret-key"
    body = json.loads(raw)
    assert body["msgtype"] == "text" and set(body) == {"msgtype", "text"}
    assert body["text"]["mentioned_mobile_list"] == ["13800000003", "@all"]
    content = body["text"]["content"]
    assert task_id in content and "task.succeeded" in content and "echo" in content
    delivery = wait_for(lambda: store.db.deliveries.find_one({"status": "sent"}), 10, what="the delivery recorded")
    assert delivery["channel_type"] == "wechat" and "robot-secret-key" not in json.dumps(delivery["target"])
    listed = api.call("GET", "/deliveries", "super").json()["items"]
    assert len(listed) == 1 and "robot-secret-key" not in json.dumps(listed)


def test_refusals_are_retried_and_recorded_like_webhooks(store, gateway, notifiers):
    # a robot that first refuses in its JSON answer (HTTP 200, errcode != 0), then fails with 500, then accepts
    robot = gateway([(200, {"errcode": 93000, "errmsg": "invalid webhook url"}), (500, {"error": "busy"}), ROBOT_OK])
    down = f"http://127.0.0.1:{free_port()}/send"
    notify.subscribe(store, {"event": "task.succeeded", "channel": {"type": "wechat", "url": robot.url + "/r"}}, ADMIN)
    notify.subscribe(store, {"event": "task.succeeded", "channel": {"type": "sms", "url": down,
                                                                    "to": "+8613800000004"}}, ADMIN)
    notifiers.append(start_notifier(store, fast()))
    task_id = publish(store, "echo", args=[1])
    run(store, task_id, result=1)
    wait_for(lambda: store.db.deliveries.count_documents({"status": {"$in": ["sent", "failed"]}}) == 2, 30,
             what="both deliveries decided")
    wechat = store.db.deliveries.find_one({"channel_type": "wechat"})
    assert wechat["status"] == "sent" and wechat["attempts"] == 3 and len(robot.requests) == 3
    assert "93000" in wechat["errors"][0]["error"] and "HTTP 500" in wechat["errors"][1]["error"]
    sms = store.db.deliveries.find_one({"channel_type": "sms"})
    assert sms["status"] == "failed" and sms["attempts"] == 3 and "unreachable" in sms["last_error"]
    assert store.tasks.get(task_id)["status"] == "succeeded"


SMS = {"type": "sms", "url": "https://sms.example.org/send", "to": "+8613800000000"}
WECHAT = {"type": "wechat", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"}
BAD = [
    ({**SMS, "to": None}, "'channel.to'"),
    ({**SMS, "to": []}, "'channel.to'"),
    ({**SMS, "to": ["+86 138"]}, "phone number"),
    ({**SMS, "to": ["1"] * 3}, "phone number"),
    ({**SMS, "url": "ftp://sms.example.org"}, "http://"),
    ({**SMS, "url": None}, "gateway URL"),
    ({**SMS, "body": "text={text}"}, "JSON object"),
    ({**SMS, "body": {"text": "{password}"}}, "unknown placeholder {password}"),
    ({**SMS, "body": {"text": "{task_id.__class__}"}}, "unknown placeholder"),
    ({**SMS, "headers": {"X-Key": "a\r\nInjected: 1"}}, "one line"),
    ({**SMS, "headers": {"Host": "evil.example.org"}}, "may not set 'Host'"),
    ({**SMS, "headers": ["Authorization: x"]}, "'channel.headers'"),
    ({**SMS, "body": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": "x"}}}}}}}}}}}, "deeper"),
    ({**SMS, "body": {"text": "x" * 9000}}, "larger than"),
    ({**SMS, "colour": "red"}, "unknown field"),
    ({**WECHAT, "to": ["+8613800000000"]}, "unknown field"),
    ({**WECHAT, "body": {"text": "{to}"}}, "unknown placeholder {to}"),
    ({**WECHAT, "mentioned_mobile_list": ["everyone"]}, "mentioned_mobile_list"),
]


@pytest.mark.parametrize("channel, words", BAD)
def test_bad_gateway_channels_get_clear_errors_and_write_nothing(api, store, channel, words):
    resp = api.call("POST", "/subscriptions", "business", json={"event": "task.failed", "channel": channel})
    assert resp.status_code == 422, resp.text
    assert words in resp.json()["error"]["message"], resp.text
    assert store.db.subscriptions.count_documents({}) == 0


def test_the_robot_text_is_cut_to_its_limit_on_a_character_boundary():
    channel = {"type": "wechat", "url": "https://qyapi.weixin.qq.com/x"}
    [body] = requests_for(channel, {"event": "task.failed", "task": {"id": "t", "error": "错" * 2000}}, "s", "错" * 2000)
    content = body["text"]["content"]
    assert len(content.encode()) <= ROBOT_TEXT_BYTES and content.endswith("…") and content.startswith("错")


def test_render_replaces_fields_in_strings_only_and_keeps_literal_braces():
    template = {"a": "{event} at {at}", "b": ["{{x}}", 3, None, True], "c": {"d": "{error}"}}
    assert render(template, {"event": "task.failed", "at": "T", "error": ""}) == {
        "a": "task.failed at T", "b": ["{x}", 3, None, True], "c": {"d": ""}}
