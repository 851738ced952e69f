/* The header-inline access path (include/gcsafety_inline.h) as out-of-line
 * functions, for the model check (tests/model/mod.rs): the fuzzer links it
 * statically (fuzz/build.rs), tests/model_check.rs builds it as a shared
 * object against the cdylib. */
#include "gcsafety.h"

bool gcs_model_inline_available (void);
GcsResult gcs_model_begin_inline (GcsHandle handle, void **object_out);
GcsResult gcs_model_end_inline (GcsHandle handle);
bool gcs_model_is_valid_inline (GcsHandle handle);
GcsResult gcs_model_safe_access_inline (GcsHandle handle, GcsAccessFn callback, void *user_data);

bool
gcs_model_inline_available (void)
{
  GcsTableView view = { 0 };
  view.struct_size = sizeof view;
  return gcs_table_view (&view) == GCS_OK;
}

GcsResult
gcs_model_begin_inline (GcsHandle handle, void **object_out)
{
  return gcs_access_begin_inline (handle, object_out);
}

GcsResult
gcs_model_end_inline (GcsHandle handle)
{
  return gcs_access_end_inline (handle);
}

bool
gcs_model_is_valid_inline (GcsHandle handle)
{
  return gcs_is_valid_inline (handle);
}

GcsResult
gcs_model_safe_access_inline (GcsHandle handle, GcsAccessFn callback, void *user_data)
{
  return gcs_safe_access_inline (handle, callback, user_data);
}
