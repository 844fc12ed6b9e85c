use petrel_spec::*;
use stateright::{Checker, Model};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sc = scenario(&args[1]).unwrap();
    let bugs = match args.get(2).filter(|n| n.as_str() != "-") { Some(n) => petrel_core::Bugs::none().with(mutant(n).unwrap().bug), None => petrel_core::Bugs::none() };
    let t = std::time::Instant::now();
    let m = PetrelModel::new(&sc, bugs);
    let c = m.checker().threads(2).target_state_count(3_000_000).spawn_bfs().join();
    println!("unique {} total {} depth {} secs {:.1} done {}", c.unique_state_count(), c.state_count(), c.max_depth(), t.elapsed().as_secs_f64(), c.is_done());
    let m = PetrelModel::new(&sc, bugs);
    for p in m.properties() { if let Some(f) = args.get(3) { if !p.name.starts_with(f.as_str()) { continue; } }
        match c.discovery(p.name) { Some(path) => println!("{}: DISCOVERY len {}\n{}", p.name, 0, path.into_actions().iter().map(|a| m.format_action(a)).collect::<Vec<_>>().join("\n")), None => println!("{}: none", p.name) }
    }
}
