# The CUDA backend (src/backends/cuda/, docs/cuda.md), built into the library
# when a CUDA compiler is found: nvcc on PATH, $CUDACXX, or
# /usr/local/cuda/bin/nvcc. -DDZ_CUDA=ON requires one; -DDZ_CUDA=OFF leaves
# the backend out without looking. Default: on when found, except in
# sanitizer and fuzz builds (the fuzz library recompiles dizuo_obj's sources
# with clang's fuzzer flags, which nvcc does not take) and cross builds.
#
# Included by CMakeLists.txt after dizuo_obj is defined and before the
# libraries made of its objects: the CUDA sources join dizuo_obj, and the
# CUDA runtime (linked statically, so that the program runs where no CUDA is
# installed) joins DZ_DEPS, which those libraries link.

if((NOT DEFINED DZ_CUDA AND NOT CMAKE_CROSSCOMPILING) OR DZ_CUDA)
  include(CheckLanguage)
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    find_program(DZ_NVCC nvcc)
    if(NOT DZ_NVCC AND EXISTS /usr/local/cuda/bin/nvcc)
      set(ENV{CUDACXX} /usr/local/cuda/bin/nvcc)
    endif()
  endif()
  check_language(CUDA)
endif()

set(dz_cuda_default OFF)
if(CMAKE_CUDA_COMPILER AND NOT DZ_SANITIZE AND NOT DZ_TSAN AND NOT DZ_FUZZ AND NOT CMAKE_CROSSCOMPILING)
  set(dz_cuda_default ON)
endif()
option(DZ_CUDA "Build the CUDA backend (needs nvcc)" ${dz_cuda_default})
message(STATUS "dizuo: CUDA backend: ${DZ_CUDA}")
if(NOT DZ_CUDA)
  return()
endif()
if(NOT CMAKE_CUDA_COMPILER)
  message(FATAL_ERROR "DZ_CUDA=ON but no CUDA compiler was found (put nvcc on PATH or set CUDACXX, or -DDZ_CUDA=OFF)")
endif()
if(DZ_FUZZ)
  message(FATAL_ERROR "DZ_CUDA=ON cannot be combined with DZ_FUZZ (configure the fuzz build with -DDZ_CUDA=OFF)")
endif()

# Ampere (A100) and Hopper (H100/H200) as real code, plus PTX of the newest
# for the driver to compile on later GPUs. Override with
# -DCMAKE_CUDA_ARCHITECTURES="..." (nvcc --list-gpu-arch lists what it takes).
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "80-real;90" CACHE STRING "GPU architectures the CUDA kernels are compiled for")
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
message(STATUS "dizuo: CUDA ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")

file(GLOB DZ_CUDA_SOURCES CONFIGURE_DEPENDS
  ${CMAKE_SOURCE_DIR}/src/backends/cuda/*.c ${CMAKE_SOURCE_DIR}/src/backends/cuda/*.cu)
target_sources(dizuo_obj PRIVATE ${DZ_CUDA_SOURCES})
# dizuo_obj exists already, so the CUDA properties that targets take from
# variables when created are set here.
set_target_properties(dizuo_obj PROPERTIES
  CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}"
  CUDA_STANDARD 17
  CUDA_STANDARD_REQUIRED ON
  CUDA_RUNTIME_LIBRARY None) # linked explicitly below, for every consumer of the library
# The C files of the backend call the CUDA runtime API.
target_include_directories(dizuo_obj PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
target_compile_definitions(dizuo_obj PUBLIC DZ_HAVE_CUDA)

# The warning flags of CMakeLists.txt (add_compile_options) are gcc's and
# clang's, which nvcc refuses: keep them for C, and give CUDA sources the
# equivalent through nvcc (its own warnings, and the host compiler's).
get_target_property(dz_obj_options dizuo_obj COMPILE_OPTIONS)
if(dz_obj_options)
  set(dz_c_only_options)
  foreach(opt IN LISTS dz_obj_options)
    list(APPEND dz_c_only_options "$<$<COMPILE_LANGUAGE:C>:${opt}>")
  endforeach()
  set_property(TARGET dizuo_obj PROPERTY COMPILE_OPTIONS ${dz_c_only_options})
endif()
target_compile_options(dizuo_obj PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
# No implicit fused multiply-adds: the kernels round as the CPU reference
# does (x86-64's baseline has no FMA), fusing only where it calls fmaf.
target_compile_options(dizuo_obj PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false>)
if(CMAKE_CUDA_HOST_COMPILER MATCHES "clang")
  # nvcc hands clang one preprocessed file, in which the static inline
  # helpers of the headers count as the file's own unused functions.
  target_compile_options(dizuo_obj PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wno-unused-function,-Wno-unneeded-internal-declaration>)
endif()
if(DZ_WERROR)
  target_compile_options(dizuo_obj PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--Werror=all-warnings -Xcompiler=-Werror>)
endif()

# Consumers of the library (dizuo_static, dizuo_shared, the program, the
# tests) link the static CUDA runtime and see DZ_HAVE_CUDA. They link with
# the host C++ compiler (CMake's choice for objects of CUDA sources), which
# brings libstdc++ for the kernels' launch stubs; the runtime is named once,
# here, rather than also by CMake's default for CUDA links.
set(CMAKE_CUDA_RUNTIME_LIBRARY None)
add_library(dizuo_cuda_usage INTERFACE)
target_link_libraries(dizuo_cuda_usage INTERFACE CUDA::cudart_static)
target_compile_definitions(dizuo_cuda_usage INTERFACE DZ_HAVE_CUDA)
target_link_libraries(dizuo_obj PUBLIC dizuo_cuda_usage)
list(APPEND DZ_DEPS dizuo_cuda_usage)
