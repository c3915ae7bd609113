.PHONY: run test bench lint messages

run:  ## set up on the embedded defaults with demo data and serve on 127.0.0.1:8000
	bin/run.sh

test:  ## install test needs, start PostgreSQL and Redis, run ruff and pytest
	bin/test.sh

bench:  ## run the benchmarks on a durable PostgreSQL (see bench/README.md)
	bench/run.sh

messages:  ## refresh the English and Russian catalogues
	.venv/bin/python manage.py makemessages -l ru -l en --ignore=.venv --ignore=bench
