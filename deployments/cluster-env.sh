# Sourced by the Ray start commands of cluster.yaml and deployments/cluster.local.yaml:
#   . ~/echo-ray/deployments/cluster-env.sh HEAD_ADDRESS [--start-redis]
# It exports REDIS_URL, so every Ray process of the node (all started by that `ray start`)
# keeps sessions, journalled writes and DTESN checkpoints in one store for the cluster, and
# turns on Ray's token authentication with the cluster's one token.
#
# deployments/secrets/redis.env (git-ignored, copied to every node with the checkout) holds
# either REDIS_URL=... (an external Redis) or REDIS_PASSWORD=... (Redis on the head), and
# RAY_AUTH_TOKEN=... . `make cluster-secret` writes a random password and token there.
# --start-redis (head only): start that Redis, bound to the head's address, unless it runs.
ECHO_RAY_SECRETS="${ECHO_RAY_SECRETS:-$HOME/echo-ray/deployments/secrets/redis.env}"
if [ ! -r "$ECHO_RAY_SECRETS" ]; then
  echo "echo-ray: $ECHO_RAY_SECRETS is missing: run 'make cluster-secret' (or put REDIS_URL=... in it) before 'ray up'" >&2
  return 1 2>/dev/null || exit 1
fi
set -a; . "$ECHO_RAY_SECRETS"; set +a
# Ray's token authentication (Ray 2.60 turns it on by itself only for `ray.init()` clusters;
# a `ray start` cluster without it runs anyone's code). Every node and client needs the same
# token: exported for this node's Ray processes, and written to ~/.ray/auth_token, where Ray
# finds it for the node's later commands (the deploy, `ray status`, `serve status`).
if [ -z "${RAY_AUTH_TOKEN:-}" ]; then
  echo "echo-ray: $ECHO_RAY_SECRETS sets no RAY_AUTH_TOKEN: run 'make cluster-secret' (it adds one)" >&2
  return 1 2>/dev/null || exit 1
fi
mkdir -p "$HOME/.ray"
( umask 077 && printf '%s' "$RAY_AUTH_TOKEN" > "$HOME/.ray/auth_token" )
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN
ECHO_RAY_REDIS_PORT="${ECHO_RAY_REDIS_PORT:-6380}"
if [ -z "${REDIS_URL:-}" ]; then
  if [ -z "${REDIS_PASSWORD:-}" ]; then
    echo "echo-ray: $ECHO_RAY_SECRETS sets neither REDIS_URL nor REDIS_PASSWORD" >&2
    return 1 2>/dev/null || exit 1
  fi
  if [ "${2:-}" = "--start-redis" ]; then
    mkdir -p "$HOME/.echo-ray-redis"
    # The password goes in through a config file (0600), never on a command line.
    umask 077
    printf 'bind %s\nport %s\nrequirepass %s\nprotected-mode yes\nappendonly yes\ndir %s\npidfile %s/redis.pid\n' \
      "$1" "$ECHO_RAY_REDIS_PORT" "$REDIS_PASSWORD" "$HOME/.echo-ray-redis" "$HOME/.echo-ray-redis" \
      > "$HOME/.echo-ray-redis/redis.conf"
    _echo_ray_redis_ping() {
      [ "$(REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h "$1" -p "$ECHO_RAY_REDIS_PORT" ping 2>/dev/null)" = PONG ]
    }
    _echo_ray_redis_ping "$1" \
      || redis-server "$HOME/.echo-ray-redis/redis.conf" --daemonize yes \
      || { echo "echo-ray: could not start redis-server on the head" >&2; return 1 2>/dev/null || exit 1; }
    # --daemonize returns before Redis listens (and loads its append-only file): wait, bounded,
    # until it answers, so the `ray start` and the deploy that follow find it.
    _echo_ray_tries=0
    until _echo_ray_redis_ping "$1"; do
      _echo_ray_tries=$((_echo_ray_tries + 1))
      if [ "$_echo_ray_tries" -ge 300 ]; then
        echo "echo-ray: the head's Redis on $1:$ECHO_RAY_REDIS_PORT did not answer within 30 s" >&2
        return 1 2>/dev/null || exit 1
      fi
      sleep 0.1
    done
    unset -f _echo_ray_redis_ping; unset _echo_ray_tries
  fi
  REDIS_URL="redis://:${REDIS_PASSWORD}@$1:${ECHO_RAY_REDIS_PORT}/0"
fi
export REDIS_URL
