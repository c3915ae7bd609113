.PHONY: run test bench messages

run:  ## set up on the embedded defaults with demo data and serve on 127.0.0.1:8000
	bin/run.sh

test:  ## install test needs, start PostgreSQL and Redis, run ruff and pytest
	bin/test.sh

bench:  ## run the benchmarks on a durable PostgreSQL (see bench/README.md)
	bench/run.sh

messages:  ## refresh the catalogues; English is filled from the source, Russian by hand
	.venv/bin/python manage.py makemessages -l ru -l en --ignore=.venv --ignore=bench --ignore=test-artifacts
	msgfilter --keep-header -i locale/en/LC_MESSAGES/django.po sed -e d | msgen - | msgattrib --clear-fuzzy --no-obsolete -o locale/en/LC_MESSAGES/django.po
	msgfmt --check --statistics -o /dev/null locale/ru/LC_MESSAGES/django.po
