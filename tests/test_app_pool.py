"""Several app processes behind nginx with sticky sessions, run from deploy/'s own
config files (bigmodels.harness.proxy): a browser gets a routing cookie on its
first request, every later request of that browser -- page, websocket, pictures
-- reaches the same process, and two browsers can land on different processes.

Needs nginx (the README's test command installs nginx-light)."""
import re
from urllib.parse import urlsplit

import pytest

from bigmodels.harness.proxy import REVEAL_HEADER, ROUTE_COOKIE, NginxPool, nginx_binary, pool_config
from bigmodels.harness.server import StreamlitServer
from bigmodels.harness.streamlit_client import StreamlitSession, http_get
from tests.conftest import run_async, unavailable
from bigmodels.base.i18n import translate

pytestmark = pytest.mark.server  # starts app servers behind nginx


@pytest.fixture(scope="module", autouse=True)
def require_nginx():
    if nginx_binary() is None:
        unavailable("needs nginx (apt-get install nginx-light)")


def test_the_pool_config_is_deploys_own_with_only_the_ports_replaced(tmp_path):
    conf = pool_config([9001, 9002, 9003], 9100, tmp_path)
    assert re.findall(r"server 127\.0\.0\.1:(\d+);", conf) == ["9001", "9002", "9003"]
    assert "hash $bigmodels_route consistent;" in conf and "proxy_pass http://bigmodels_app/bigmodels/;" in conf
    assert "listen 127.0.0.1:9100;" in conf and REVEAL_HEADER not in conf


async def upstream_of(url: str, route: str | None) -> tuple[str, list[str]]:
    """(the process that answered, the Set-Cookie headers) for one GET with ``route`` as the cookie."""
    response = await http_get(url, {"Cookie": f"{ROUTE_COOKIE}={route}"} if route else None, 30)
    assert response.status == 200
    return response.header_values(REVEAL_HEADER)[0], response.header_values("set-cookie")


@pytest.fixture(scope="module")
def pool(tmp_path_factory, small_mnist_dir):
    home = tmp_path_factory.mktemp("pool-home")
    env = {"BIGMODELS_DATA_DIR": str(small_mnist_dir)}
    with StreamlitServer(home, env, base_path="bigmodels") as a, StreamlitServer(home, env, base_path="bigmodels") as b, \
            NginxPool([a.port, b.port], reveal_upstream=True) as proxy:
        yield {"proxy": proxy, "servers": {f"127.0.0.1:{a.port}": a, f"127.0.0.1:{b.port}": b}}


def test_a_first_visit_gets_a_route_cookie_and_keeps_its_process(pool):
    health = pool["proxy"].url + "/_stcore/health"

    async def scenario():
        _, cookies = await upstream_of(health, None)
        (route,) = [c.split(";")[0].split("=", 1)[1] for c in cookies if c.startswith(ROUTE_COOKIE + "=")]
        first, again = await upstream_of(health, route)
        assert not any(c.startswith(ROUTE_COOKIE) for c in again)  # set once, not on every answer
        answers = {(await upstream_of(health, route))[0] for _ in range(15)}
        return first, answers

    first, answers = run_async(scenario())
    assert answers == {first} and first in pool["servers"]


def test_two_browsers_on_two_processes_each_see_their_own_pictures(pool):
    """A session on each process (its route cookie found by asking nginx), each
    through the proxy: the page works and its pictures load -- and they exist only
    in its own process, which is why the routing must be sticky."""
    health = pool["proxy"].url + "/_stcore/health"
    radio_label, random_label = translate("sandbox.input.label", "en"), translate("sandbox.input.random", "en")

    async def scenario():
        routes: dict[str, str] = {}
        for i in range(64):  # consistent hashing over 2 processes: a handful of keys reach both
            upstream, _ = await upstream_of(health, f"probe-{i}")
            routes.setdefault(upstream, f"probe-{i}")
            if len(routes) == len(pool["servers"]):
                break
        assert set(routes) == set(pool["servers"])
        seen = {}
        for upstream, route in routes.items():
            async with StreamlitSession(pool["proxy"].url) as s:
                s.cookies[ROUTE_COOKIE] = route
                await s.open_page("sandbox")
                await s.set_widget(s.find_widget("radio", radio_label), random_label)
                assert await s.fetch_media() > 0  # through nginx, with the cookie
                path = urlsplit(s.media_urls[0]).path
                direct = {}
                for name, server in pool["servers"].items():
                    direct[name] = (await http_get(f"http://{name}{path}", None, 30)).status
                seen[upstream] = direct
        return seen

    seen = run_async(scenario())
    for upstream, direct in seen.items():  # each picture lives in the process the cookie chose, only there
        assert direct[upstream] == 200
        assert all(status == 404 for name, status in direct.items() if name != upstream)
