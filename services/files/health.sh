#!/bin/sh
# Apache answers (401 without credentials is an answer).
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/) && [ "$code" != "000" ]
