//! Where collections are kept across visits: the origin private file system (OPFS), one
//! directory `mlr-collections/` holding each collection as its `.mlrc` file.
//!
//! Why OPFS and not IndexedDB: a collection is one binary file that is also what "Export" hands
//! out and `mlr search --collection` reads, so it is stored as that file, byte for byte; OPFS
//! stores files, is quota-managed like IndexedDB, and is written through a writable stream whose
//! contents replace the file only when it closes, so a save that fails (a full quota, a closed
//! tab) leaves the previous save whole. Only the worker touches the directory.

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    File, FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions, FileSystemGetFileOptions,
    FileSystemWritableFileStream, StorageEstimate, StorageManager, WorkerGlobalScope,
};

/// The directory of the collections.
const DIR: &str = "mlr-collections";

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The browser has no origin private file system here (an old browser, a private window).
    Unavailable(String),
    /// The origin's storage quota is used up.
    Quota(String),
    /// Any other failure of the file system.
    Failed(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "this browser keeps no files for the page here ({m})"),
            StoreError::Quota(m) => write!(f, "the browser's storage for this page is full ({m})"),
            StoreError::Failed(m) => f.write_str(m),
        }
    }
}

/// A JavaScript exception as a [`StoreError`] (a `QuotaExceededError` told apart).
fn js_error(what: &str, e: JsValue) -> StoreError {
    let name = Reflect::get(&e, &"name".into()).ok().and_then(|n| n.as_string()).unwrap_or_default();
    let message =
        Reflect::get(&e, &"message".into()).ok().and_then(|m| m.as_string()).unwrap_or_else(|| format!("{e:?}"));
    match name.as_str() {
        "QuotaExceededError" => StoreError::Quota(format!("{what}: {message}")),
        "SecurityError" | "NotAllowedError" => StoreError::Unavailable(format!("{what}: {message}")),
        _ => StoreError::Failed(format!("{what}: {name} {message}")),
    }
}

async fn wait(what: &str, promise: js_sys::Promise) -> Result<JsValue, StoreError> {
    JsFuture::from(promise).await.map_err(|e| js_error(what, e))
}

fn storage() -> Result<StorageManager, StoreError> {
    let global: WorkerGlobalScope = js_sys::global()
        .dyn_into()
        .map_err(|_| StoreError::Unavailable("the collections are kept by the worker only".into()))?;
    Ok(global.navigator().storage())
}

async fn dir() -> Result<FileSystemDirectoryHandle, StoreError> {
    let storage = storage()?;
    if !Reflect::has(&storage, &"getDirectory".into()).unwrap_or(false) {
        return Err(StoreError::Unavailable("no navigator.storage.getDirectory".into()));
    }
    let root: FileSystemDirectoryHandle =
        wait("opening the page's storage", storage.get_directory()).await?.unchecked_into();
    let options = FileSystemGetDirectoryOptions::new();
    options.set_create(true);
    Ok(wait("opening the collections' directory", root.get_directory_handle_with_options(DIR, &options))
        .await?
        .unchecked_into())
}

/// The names of the stored files (`.mlrc` only), sorted.
pub async fn names() -> Result<Vec<String>, StoreError> {
    let dir = dir().await?;
    let iter: JsValue = dir.keys().into();
    let next: js_sys::Function = Reflect::get(&iter, &"next".into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or_else(|| StoreError::Failed("the directory cannot be listed".into()))?;
    let mut out = Vec::new();
    loop {
        let step = next.call0(&iter).map_err(|e| js_error("listing the collections", e))?;
        let step = wait("listing the collections", step.unchecked_into()).await?;
        if Reflect::get(&step, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true) {
            break;
        }
        if let Some(name) = Reflect::get(&step, &"value".into()).ok().and_then(|v| v.as_string()) {
            if name.ends_with(".mlrc") {
                out.push(name);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The bytes of stored file `name`.
pub async fn read(name: &str) -> Result<Vec<u8>, StoreError> {
    let handle: FileSystemFileHandle =
        wait(&format!("opening {name}"), dir().await?.get_file_handle(name)).await?.unchecked_into();
    let file: File = wait(&format!("opening {name}"), handle.get_file()).await?.unchecked_into();
    let buffer = wait(&format!("reading {name}"), file.array_buffer()).await?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Stores `bytes` as file `name`, replacing it whole (only when every byte is written).
pub async fn write(name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let options = FileSystemGetFileOptions::new();
    options.set_create(true);
    let what = format!("saving {name}");
    let handle: FileSystemFileHandle =
        wait(&what, dir().await?.get_file_handle_with_options(name, &options)).await?.unchecked_into();
    let stream: FileSystemWritableFileStream = wait(&what, handle.create_writable()).await?.unchecked_into();
    // A copy outside the wasm memory: the threaded worker's memory is shared, and the stream
    // takes no view of shared memory.
    let copy = Uint8Array::new_with_length(bytes.len() as u32);
    copy.copy_from(bytes);
    let written = match stream.write_with_js_u8_array(&copy) {
        Ok(p) => wait(&what, p).await.map(|_| ()),
        Err(e) => Err(js_error(&what, e)),
    };
    if let Err(e) = written {
        // Dropping the stream's changes leaves the file as it was.
        let _ = JsFuture::from(stream.abort()).await;
        return Err(e);
    }
    wait(&what, stream.close()).await.map(|_| ())
}

/// Deletes stored file `name`.
pub async fn remove(name: &str) -> Result<(), StoreError> {
    wait(&format!("deleting {name}"), dir().await?.remove_entry(name)).await.map(|_| ())
}

/// Bytes the origin uses and its quota, if the browser says.
pub async fn estimate() -> Option<(f64, f64)> {
    let promise = storage().ok()?.estimate().ok()?;
    let e: StorageEstimate = JsFuture::from(promise).await.ok()?.unchecked_into();
    Some((e.get_usage()?, e.get_quota()?))
}
