#!/bin/sh
# The Kafka broker of compose.yaml (apache/kafka image): format the storage once, with the
# SCRAM users of the platform's principals, then run the broker. Every file comes from
# `devstack.compose_init files` in the kafka-config volume: server.properties (the same
# settings as `ethgw up`'s broker: SASL/SCRAM on the client listener, PLAIN on the controller
# listener, ACLs), and format.args, a java argument file that keeps the passwords off the
# command line (kafka-storage.sh would put them there).
set -eu
umask 077
CONFIG=/state/kafka-config
if [ ! -f /state/kafka-data/data/meta.properties ]; then
  java -Dlog4j.configuration=file:/opt/kafka/config/tools-log4j.properties \
    -cp '/opt/kafka/libs/*' @"$CONFIG/format.args"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$CONFIG/server.properties"
