//! Writes each target's seeds ([`fleetscope_fuzz::seeds`]) into `DIR/TARGET/seed-N`.

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".into());
    for (name, _) in fleetscope_fuzz::TARGETS {
        let folder = std::path::Path::new(&dir).join(name);
        std::fs::create_dir_all(&folder)?;
        for (i, seed) in fleetscope_fuzz::seeds(name).iter().enumerate() {
            std::fs::write(folder.join(format!("seed-{i}")), seed)?;
        }
    }
    Ok(())
}
