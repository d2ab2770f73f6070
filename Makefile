# Two commands on a fresh machine:  make run  (serve the sample shop)  and  make test  (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= examples/sample-shop/kefu.toml

.PHONY: run chat test install browser servers clean

# Serving needs only kefu's own dependencies; the test tools, transformers and torch (~1.5 GB) come
# with `make test`. constraints.txt pins torch to the CPU build these machines carry, for the day a
# dependency asks for torch; users installing kefu elsewhere are not pinned.
PIP := $(BIN)/pip install --disable-pip-version-check --progress-bar on -c constraints.txt

$(VENV)/.serving: pyproject.toml constraints.txt
	@echo "== installing kefu's serving dependencies into $(VENV) (first run: a minute or two) =="
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

$(VENV)/.installed: $(VENV)/.serving
	@echo "== installing the test tools and the transformers extra into $(VENV) =="
	$(PIP) -e '.[test,transformers]'
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.serving
	@echo ""
	@echo "Serving the sample shop 'Lantern Lane'. In another terminal, try:"
	@echo "  curl -s http://127.0.0.1:8080/v1/messages -H 'Authorization: Bearer sample-shop-token-change-me' \\"
	@echo "       -H 'Content-Type: application/json' -d '{\"conversation_id\": \"demo\", \"text\": \"how long does shipping take?\"}'"
	@echo "  curl -s http://127.0.0.1:8080/v1/messages -H 'Authorization: Bearer sample-shop-token-change-me' \\"
	@echo "       -H 'Content-Type: application/json' -d '{\"conversation_id\": \"demo\", \"text\": \"运费多少钱？\"}'"
	@echo "Agents and the dashboard: http://127.0.0.1:8080/console (name demo, password lantern-demo)."
	@echo "With KEFU_TELEGRAM_TOKEN set (from @BotFather) the shop answers in Telegram too."
	@echo ""
	$(BIN)/kefu serve --config $(CONFIG) $(if $(KEFU_TELEGRAM_TOKEN),--telegram)

chat: $(VENV)/.serving
	$(BIN)/kefu chat --config $(CONFIG)

# The web console's browser tests drive Debian's chromium through Playwright (Playwright's own
# browser download needs the internet); a CJK font so Chinese shopper text renders in screenshots.
BROWSER_PACKAGES := chromium fonts-wqy-zenhei
browser:
	@dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(BROWSER_PACKAGES); }; }

# The store's tests run on SQLite and on a real PostgreSQL, and the multi-worker tests behind a real nginx:
# Debian's binaries, which the tests start themselves in temp folders on free 127.0.0.1 ports
# (tests/postgres_server.py, tests/workers.py) and stop at the end.
SERVER_PACKAGES := postgresql nginx-light
servers:
	@dpkg -s $(SERVER_PACKAGES) >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq $(SERVER_PACKAGES) >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(SERVER_PACKAGES); }; }

test: install browser servers
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) var .pytest_cache
