fn main() {
    print!("{}", trackvia_operator::crd::crd_yaml());
}
