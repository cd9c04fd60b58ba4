# CTest fixture for the examples: ACTION=start launches a throw-away redis-server on a unix socket
# in DIR (persistence off); ACTION=stop shuts it down.
set(sock "${DIR}/redis.sock")
if(ACTION STREQUAL "start")
  file(REMOVE_RECURSE "${DIR}")
  file(MAKE_DIRECTORY "${DIR}")
  execute_process(COMMAND redis-server --port 0 --unixsocket "${sock}" --unixsocketperm 700 --save "" --appendonly no
                          --daemonize yes --pidfile "${DIR}/redis.pid" --dir "${DIR}" --logfile "${DIR}/redis.log"
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cannot start redis-server")
  endif()
  foreach(i RANGE 100)
    execute_process(COMMAND redis-cli -s "${sock}" ping OUTPUT_VARIABLE out ERROR_QUIET)
    if(out MATCHES "PONG")
      return()
    endif()
    execute_process(COMMAND ${CMAKE_COMMAND} -E sleep 0.05)
  endforeach()
  message(FATAL_ERROR "redis-server did not answer on ${sock}")
else()
  execute_process(COMMAND redis-cli -s "${sock}" shutdown nosave OUTPUT_QUIET ERROR_QUIET)
endif()
