// CShims: static inline accessors for the MPI and HDF5 handles that exist only as C macros.
// Swift cannot see macros such as MPI_COMM_WORLD or H5T_NATIVE_FLOAT; these functions return
// them. Nothing else lives here and there is no stable API: only the Swift wrapper modules
// (HDF5, Distributed) call these.
#ifndef LFLOW_CSHIMS_H
#define LFLOW_CSHIMS_H

#include <mpi.h>
#include <hdf5.h>

// MARK: MPI
static inline MPI_Comm lf_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm lf_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype lf_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype lf_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype lf_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype lf_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op lf_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op lf_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op lf_mpi_min(void) { return MPI_MIN; }
static inline void *lf_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int lf_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline MPI_Errhandler lf_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int lf_mpi_success(void) { return MPI_SUCCESS; }
static inline int lf_mpi_undefined(void) { return MPI_UNDEFINED; }
static inline int lf_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline MPI_Status *lf_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }

// MARK: HDF5
// H5T_NATIVE_* expand to H5open() plus a global, so they must be read at run time.
static inline hid_t lf_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t lf_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t lf_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t lf_h5t_native_uint64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t lf_h5t_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t lf_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t lf_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t lf_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t lf_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t lf_h5s_all(void) { return H5S_ALL; }
static inline unsigned lf_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned lf_h5f_acc_excl(void) { return H5F_ACC_EXCL; }
static inline unsigned lf_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned lf_h5f_acc_rdwr(void) { return H5F_ACC_RDWR; }
static inline size_t lf_h5t_variable(void) { return H5T_VARIABLE; }
static inline hid_t lf_h5e_default(void) { return H5E_DEFAULT; }
static inline hid_t lf_h5p_link_create(void) { return H5P_LINK_CREATE; }

// MARK: Preemption
// SIGTERM and SIGUSR1 only set a flag (sig_atomic_t, the one thing a handler may safely do);
// the trainer reads it at step boundaries. Defined in shims.c.
void lf_install_preemption_handlers(void);
int lf_preemption_requested(void);
// The default action for SIGTERM and SIGUSR1 again (for commands that never read the flag);
// a signal that already arrived takes effect now.
void lf_restore_default_termination(void);

#endif
