#!/usr/bin/env bash
# Fetch the Apache Kafka broker jars (kafka_2.13 and its run-time dependencies)
# from Maven Central into a cache OUTSIDE the repository, for the integration
# tests and for `python -m streams.brokers`.
#
#   scripts/fetch-kafka.sh            # into ~/.cache/dialguard/kafka-<version>/libs
#   DIALGUARD_KAFKA_LIBS=/some/dir scripts/fetch-kafka.sh
#
# Needs Java 17+ (to run the broker later) and Maven 3.8+ (to fetch).  On Debian:
#   apt-get install -y openjdk-17-jre-headless maven
# Idempotent: when the cache already holds a complete copy (a marker file is
# written last) it prints the directory and exits at once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/kafka/pom.xml"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
libs="${DIALGUARD_KAFKA_LIBS:-${XDG_CACHE_HOME:-$HOME/.cache}/dialguard/kafka-$version/libs}"
marker="$libs/.complete-$version"

if [[ -f "$marker" && -f "$libs/kafka_2.13-$version.jar" ]]; then
    echo "$libs"
    exit 0
fi

for tool in java mvn; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "fetch-kafka: '$tool' not found; install it first, e.g." >&2
        echo "  apt-get install -y openjdk-17-jre-headless maven" >&2
        exit 2
    fi
done

tmp="$libs.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
mkdir -p "$tmp"
if ! mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.mvn.log" 2>&1; then
    cat "$tmp.mvn.log" >&2
    rm -f "$tmp.mvn.log"
    echo "fetch-kafka: Maven could not fetch Kafka $version (see above)" >&2
    exit 1
fi
rm -f "$tmp.mvn.log"
if [[ ! -f "$tmp/kafka_2.13-$version.jar" ]]; then
    echo "fetch-kafka: Maven finished but kafka_2.13-$version.jar is missing in $tmp" >&2
    exit 1
fi
touch "$tmp/.complete-$version"
rm -rf "$libs"
mkdir -p "$(dirname "$libs")"
mv "$tmp" "$libs"
trap - EXIT
echo "$libs"
