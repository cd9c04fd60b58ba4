# Warnings and sanitizers for redkit's own tests, examples and benchmark. Never exported.
function(redkit_harden target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE
      -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
      -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wdouble-promotion)
    if(REDKIT_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
    if(REDKIT_SANITIZE)
      target_compile_options(${target} PRIVATE -fsanitize=${REDKIT_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
      target_link_options(${target} PRIVATE -fsanitize=${REDKIT_SANITIZE})
    endif()
  endif()
endfunction()
