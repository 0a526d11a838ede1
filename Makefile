# Everything the README's commands need is set up here, on a bare machine with Python 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PIP    := $(BIN)/python -m pip

.PHONY: install compare test lint browser clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e ".[all,test]"
	touch $(STAMP)

compare: install
	$(BIN)/suite compare

test: install browser
	$(BIN)/ruff check suite backends tests
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check suite backends tests

# The HTML report's test opens it in a real headless browser (Debian's Chromium).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing Chromium for the HTML report test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	    sudo sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null'; }

clean:
	rm -rf $(VENV) build *.egg-info
