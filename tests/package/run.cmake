# Drives one package test (cmake -P): MODE=find_package installs redkit into a scratch prefix and
# builds the consumer against it; MODE=add_subdirectory builds the consumer with redkit's source
# tree added as a subdirectory. The consumer is built twice, header-only (redkit::redkit) and
# compiled (redkit::redkit_compiled); both run against a throw-away redis-server on a unix socket
# and must print PONG and their mode; with pkg-config, find_package also builds it with the flags
# of redkit.pc and redkit-compiled.pc and runs those. MODE=install_unbuilt runs `cmake --install` right after
# configuring (tool on, nothing built): the header-only package installs, its consumer works,
# and a consumer that requires the compiled component is refused with redkit's message.
# MODE=fetchcontent pulls redkit into the consumer with FetchContent from a git repository.
string(REPLACE "|" ";" FORWARD "${FORWARD}")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

set(gen)
if(GENERATOR)
  set(gen -G "${GENERATOR}")
endif()

set(programs consumer consumer_compiled)
if(MODE STREQUAL "install_unbuilt")
  run(${CMAKE_COMMAND} ${gen} -S "${SOURCE_DIR}" -B "${WORK_DIR}/redkit-build"
      -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix -DREDKIT_INSTALL=ON
      -DREDKIT_BUILD_TESTS=OFF -DREDKIT_BUILD_EXAMPLES=OFF -DREDKIT_BUILD_BENCH=OFF ${FORWARD})
  run(${CMAKE_COMMAND} --install "${WORK_DIR}/redkit-build")  # nothing built
  if(EXISTS "${WORK_DIR}/prefix/lib/libredkit.a" OR EXISTS "${WORK_DIR}/prefix/bin/redkit-queue")
    message(FATAL_ERROR "an install of nothing built installed a library or a tool")
  endif()
  run(${CMAKE_COMMAND} ${gen} -S "${CMAKE_CURRENT_LIST_DIR}/consumer" -B "${WORK_DIR}/consumer-build"
      -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DREDKIT_CONSUMER_MODE=find_package
      -DREDKIT_CONSUMER_HEADER_ONLY=ON ${FORWARD})
  set(programs consumer)
  # asking for the compiled component: refused at configure time, saying what to do
  execute_process(COMMAND ${CMAKE_COMMAND} ${gen} -S "${CMAKE_CURRENT_LIST_DIR}/consumer"
                          -B "${WORK_DIR}/consumer-compiled-build" -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix
                          -DREDKIT_CONSUMER_MODE=find_package -DREDKIT_CONSUMER_COMPONENTS=compiled ${FORWARD}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "installed without its compiled library")
    message(FATAL_ERROR "find_package(redkit COMPONENTS compiled) on a header-only install: (${rc})\n${out}\n${err}")
  endif()
elseif(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} ${gen} -S "${SOURCE_DIR}" -B "${WORK_DIR}/redkit-build"
      -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix -DREDKIT_INSTALL=ON
      -DREDKIT_BUILD_TESTS=OFF -DREDKIT_BUILD_EXAMPLES=OFF -DREDKIT_BUILD_BENCH=OFF -DREDKIT_BUILD_TOOLS=OFF
      ${FORWARD})
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/redkit-build")
  run(${CMAKE_COMMAND} --install "${WORK_DIR}/redkit-build")
  if(NOT EXISTS "${WORK_DIR}/prefix/share/cmake/redkit/redkitConfig.cmake")
    message(FATAL_ERROR "redkitConfig.cmake not installed under share/cmake/redkit")
  endif()
  run(${CMAKE_COMMAND} ${gen} -S "${CMAKE_CURRENT_LIST_DIR}/consumer" -B "${WORK_DIR}/consumer-build"
      -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DREDKIT_CONSUMER_MODE=find_package ${FORWARD})
  # pkg-config: the same program built with the flags redkit.pc and redkit-compiled.pc give
  find_program(PKG_CONFIG pkg-config)
  if(PKG_CONFIG)
    set(ENV{PKG_CONFIG_PATH} "${WORK_DIR}/prefix/share/pkgconfig")
    foreach(pc redkit redkit-compiled)
      execute_process(COMMAND ${PKG_CONFIG} --cflags --libs ${pc} RESULT_VARIABLE rc OUTPUT_VARIABLE flags
                      ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
      if(NOT rc EQUAL 0)
        message(FATAL_ERROR "pkg-config --cflags --libs ${pc}: ${err}")
      endif()
      separate_arguments(flags UNIX_COMMAND "${flags}")
      set(compiler c++)
      foreach(f IN LISTS FORWARD)
        if(f MATCHES "^-DCMAKE_CXX_COMPILER=(.*)$")
          set(compiler "${CMAKE_MATCH_1}")
        endif()
      endforeach()
      run(${compiler} "${CMAKE_CURRENT_LIST_DIR}/consumer/main.cpp" -o "${WORK_DIR}/consumer-build/pc_${pc}" ${flags})
    endforeach()
    list(APPEND programs pc_redkit pc_redkit-compiled)
  endif()
elseif(MODE STREQUAL "fetchcontent")
  # FetchContent from a git repository, as a user's project does (here: a clone of this checkout's
  # HEAD, so uncommitted changes are not tested by this one)
  run(git clone --quiet --no-local "${SOURCE_DIR}" "${WORK_DIR}/redkit.git" --bare)
  run(${CMAKE_COMMAND} ${gen} -S "${CMAKE_CURRENT_LIST_DIR}/consumer" -B "${WORK_DIR}/consumer-build"
      -DREDKIT_CONSUMER_MODE=fetchcontent "-DREDKIT_GIT_REPOSITORY=file://${WORK_DIR}/redkit.git" ${FORWARD})
else()
  run(${CMAKE_COMMAND} ${gen} -S "${CMAKE_CURRENT_LIST_DIR}/consumer" -B "${WORK_DIR}/consumer-build"
      -DREDKIT_CONSUMER_MODE=add_subdirectory -DREDKIT_SOURCE_DIR=${SOURCE_DIR} ${FORWARD})
endif()
run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer-build")

# A throw-away server on a private unix socket.
set(sock "${WORK_DIR}/redis.sock")
run(redis-server --port 0 --unixsocket "${sock}" --unixsocketperm 700 --save "" --appendonly no
    --daemonize yes --pidfile "${WORK_DIR}/redis.pid" --dir "${WORK_DIR}" --logfile "${WORK_DIR}/redis.log")
set(tries 0)
while(NOT EXISTS "${sock}" AND tries LESS 100)
  execute_process(COMMAND ${CMAKE_COMMAND} -E sleep 0.05)
  math(EXPR tries "${tries} + 1")
endwhile()
# the program in both modes; each must say PONG, and which mode it was built in
set(failures)
foreach(program IN LISTS programs)
  set(mode header-only)
  if(program STREQUAL "consumer_compiled" OR program STREQUAL "pc_redkit-compiled")
    set(mode compiled)
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -E env "REDIS_URL=unix://${sock}" "${WORK_DIR}/consumer-build/${program}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${program} printed: ${out}")
  if(NOT rc EQUAL 0 OR NOT out MATCHES "PONG ${mode}")
    list(APPEND failures "${program} failed (${rc}): ${out}\n${err}")
  endif()
endforeach()
execute_process(COMMAND redis-cli -s "${sock}" shutdown nosave OUTPUT_QUIET ERROR_QUIET)
if(failures)
  message(FATAL_ERROR "${failures}")
endif()
