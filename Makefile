# The README's two commands: `make run` and `make test`.
# Both create .venv at the repository root and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/amiwatch up

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	-$(BIN)/amiwatch kafka stop
	rm -rf $(VENV) var
