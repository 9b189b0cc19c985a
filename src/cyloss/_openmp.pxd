# The only place that touches OpenMP. Without an OpenMP build the functions below become
# serial stand-ins, so the loops compile the same way either way.

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define CYLOSS_OPENMP_ENABLED 1
    #else
    #define CYLOSS_OPENMP_ENABLED 0
    #define omp_get_max_threads() 1
    #define omp_get_thread_num() 0
    #endif
    #ifndef CYLOSS_BUILD_FLAGS
    #define CYLOSS_BUILD_FLAGS "unknown"
    #endif
    #ifndef CYLOSS_BUILD_DEBUG
    #define CYLOSS_BUILD_DEBUG 0
    #endif
    """
    bint CYLOSS_OPENMP_ENABLED
    bint CYLOSS_BUILD_DEBUG
    const char* CYLOSS_BUILD_FLAGS
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
